"""The ConvNeXt-L backbone loads from an open_clip weights file: a randomly initialised open_clip
`convnext_large_d_320` (built once, offline) is saved as a user would have it, then loaded through `load_model`;
features and CLIP region embeddings must equal open_clip's own computation bit for bit."""
from __future__ import annotations

import pytest
import torch

from omg_seg_core.config import CONVL
from omg_seg_core.model.backbones.clip_convnext import CLIPConvNeXtBackbone
from omg_seg_core.model.checkpoint import CheckpointError, load_model, ours_to_official
from omg_seg_core.model.decoder_head import OMGSegHead
from omg_seg_core.model.omg_seg import build_pixel_decoder

open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def clip_and_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    clip = open_clip.create_model("convnext_large_d_320", pretrained=None).eval()  # the one 200M+ instantiation
    clip_path = d / "open_clip_convnext_large_d_320.bin"
    torch.save(clip.state_dict(), clip_path)  # full CLIP file: visual + text tower, as distributed
    head_path = d / "omg_seg_convl.pth"
    with torch.device("meta"):
        shapes = {**{f"pixel_decoder.{k}": v.shape for k, v in build_pixel_decoder(CONVL).state_dict().items()},
                  **{f"head.{k}": v.shape for k, v in OMGSegHead(CONVL).state_dict().items()}}
    torch.save({"state_dict": {ours_to_official(k): 0.02 * torch.randn(s) for k, s in shapes.items()}}, head_path)
    model, meta = load_model("convl", weights=head_path, backbone_weights=clip_path)
    yield clip, model, meta, clip_path
    clip_path.unlink()  # 1.4 GB
    head_path.unlink()


def test_backbone_features_equal_open_clip(clip_and_files):
    clip, model, meta, clip_path = clip_and_files
    assert meta["format"] == "official" and meta["text_weights"] == str(clip_path)
    assert all(not p.requires_grad for p in model.backbone.parameters()) and not model.backbone.training
    torch.manual_seed(3)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours = model.backbone(x)
        trunk = clip.visual.trunk
        y = trunk.stem(x)
        ref = []
        for stage in trunk.stages:
            y = stage(y)
            ref.append(y)
    assert [tuple(f.shape[1:]) for f in ours] == [(192, 16, 24), (384, 8, 12), (768, 4, 6), (1536, 2, 3)]
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    # CLIP region head: average inside the mask -> trunk.head (LayerNorm2d) -> visual.head (MLP) == ours
    masks = torch.zeros(2, 16, 24)
    masks[0, :8, :12] = 5.0   # top-left quadrant at stride 4 -> f32 pixel (0, 0) after bilinear resize
    masks[1] = 1.0            # whole image
    with torch.no_grad():
        emb = model.backbone.region_embed(ours[-1], masks)
        f32 = ours[-1][0]
        m = (torch.nn.functional.interpolate(masks[None], size=(2, 3), mode="bilinear",
                                             align_corners=False)[0] > 0).float()
        pooled = torch.einsum("chw,nhw->nc", f32, m / m.sum((1, 2), keepdim=True))
        ref_emb = clip.visual.head(clip.visual.trunk.head(pooled[:, :, None, None]))
    assert emb.shape == (2, 768)
    assert torch.allclose(emb, ref_emb, atol=1e-5, rtol=1e-5)
    # whole pipeline runs on the loaded model
    with torch.no_grad():
        feats = model.forward_image(torch.randn(1, 3, 64, 64))
        reg = model.region_embed(feats, feats.mask_logits[0, :3])
    assert feats.class_embed.shape == (1, 300, 768) and feats.clip_feat.shape == (1, 1536, 2, 2)
    assert reg.shape == (3, 768) and torch.isfinite(reg).all()


def test_backbone_file_errors_name_keys(tmp_path, clip_and_files):
    clip = clip_and_files[0]
    sd = {k: v for k, v in clip.state_dict().items() if k.startswith("visual.trunk.stages.3.blocks.2")}
    p = tmp_path / "partial.bin"
    torch.save(sd, p)
    with torch.device("meta"):
        bb = CLIPConvNeXtBackbone()
    with pytest.raises(CheckpointError) as e:
        bb.load_open_clip_weights(p, assign=True)
    assert "missing 336 key(s)" in str(e.value) and "stem.0.weight" in str(e.value) and "partial.bin" in str(e.value)
    text_only = tmp_path / "text.bin"
    torch.save({"token_embedding.weight": torch.zeros(2, 2)}, text_only)
    with pytest.raises(ValueError, match="no 'visual"):
        bb.load_open_clip_weights(text_only)
