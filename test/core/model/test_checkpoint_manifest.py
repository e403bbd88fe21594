"""Our state_dict keys/shapes equal the official manifest (head via the documented prefix mapping, backbone
unchanged), and the open_clip -> backbone key mapping covers every pair the manifest lists."""
from __future__ import annotations

import json

import pytest
import torch

from omg_seg_core.config import CONVL
from omg_seg_core.model.backbones.clip_convnext import CLIPConvNeXtBackbone, open_clip_key_to_backbone
from omg_seg_core.model.checkpoint import official_to_ours, ours_to_official
from omg_seg_core.model.decoder_head import OMGSegHead
from omg_seg_core.model.omg_seg import build_pixel_decoder


@pytest.fixture(scope="module")
def manifest(reference_dir):
    return json.loads((reference_dir / "omg_seg_convl_head_manifest.json").read_text())


def test_head_state_dict_equals_manifest(manifest):
    with torch.device("meta"):  # shapes only: no 21M-parameter init needed
        ours = {f"pixel_decoder.{k}": tuple(v.shape) for k, v in build_pixel_decoder(CONVL).state_dict().items()}
        ours.update({f"head.{k}": tuple(v.shape) for k, v in OMGSegHead(CONVL).state_dict().items()})
    official = {e["key"]: tuple(e["shape"]) for e in manifest["head_keys"]}
    mapped = {ours_to_official(k): s for k, s in ours.items()}
    assert sorted(set(official) - set(mapped)) == [], "official keys we lack"
    assert sorted(set(mapped) - set(official)) == [], "keys the official model lacks"
    bad = {k: (mapped[k], official[k]) for k in official if mapped[k] != official[k]}
    assert bad == {}
    assert len(official) == manifest["head_summary"]["num_tensors"] == 310
    assert sum(torch.Size(s).numel() for s in mapped.values()) == manifest["head_summary"]["num_params"]
    # the mapping is a bijection
    assert all(official_to_ours(ours_to_official(k)) == k for k in ours)
    # the 4 prompt tensors exist (enable_box_query=True), the non-persistent buffers do not
    assert all(k in mapped for k in manifest["box_query_keys"])
    assert not any(k in mapped for k in manifest["non_persistent_buffers"])


def test_backbone_state_dict_equals_manifest_and_open_clip_mapping(manifest):
    with torch.device("meta"):
        bb = CLIPConvNeXtBackbone()
    ours = {f"backbone.{k}": tuple(v.shape) for k, v in bb.state_dict().items()}
    official = {e["key"]: tuple(e["shape"]) for e in manifest["backbone_keys"]}
    assert ours == official
    pairs = manifest["backbone_mapping"]["pairs"]
    assert len(pairs) == manifest["backbone_summary"]["num_tensors"] == 345
    for p in pairs:
        assert "backbone." + open_clip_key_to_backbone(p["open_clip_key"]) == p["backbone_key"], p
    # text-tower keys are not backbone keys; an unknown visual key is an error, not silently dropped
    assert open_clip_key_to_backbone("transformer.resblocks.0.attn.in_proj_weight") is None
    with pytest.raises(KeyError, match="visual.attnpool.proj"):
        open_clip_key_to_backbone("visual.attnpool.proj")
