"""Checkpoint loading: official head files (flat / {'state_dict'}), key/shape errors naming every bad key,
clear errors for wrong files, and our own format (fp16) round trip."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from omg_seg_core.config import CONVL, TINY
from omg_seg_core.model.backbones.clip_convnext import CLIPConvNeXtBackbone
from omg_seg_core.model.checkpoint import (CheckpointError, load_model, load_official_head, ours_to_official,
                                           save_checkpoint)
from omg_seg_core.model.omg_seg import OMGSeg, build_model, head_state_dict


@pytest.fixture(scope="module")
def convl_head_only():
    """CONVL with its 200M-parameter backbone on the meta device (never run here): real pixel decoder + head."""
    with torch.device("meta"):
        bb = CLIPConvNeXtBackbone()
    torch.manual_seed(0)
    return OMGSeg(CONVL, bb).eval()


@pytest.fixture(scope="module")
def official_sd(convl_head_only):
    """A head state_dict in the official naming (what omg_seg_convl.pth holds), random values."""
    torch.manual_seed(1)
    return {ours_to_official(k): torch.randn_like(v) for k, v in head_state_dict(convl_head_only).items()}


@pytest.mark.parametrize("layout", ["flat", "wrapped", "mmengine"])
def test_official_head_loads_flat_or_wrapped(tmp_path, convl_head_only, official_sd, layout):
    path = tmp_path / "omg_seg_convl.pth"
    obj = {"flat": official_sd, "wrapped": {"state_dict": official_sd, "meta": {"epoch": 12}},
           # mmengine checkpoints carry non-tensor objects in meta: loaded with a warning (user-named file)
           "mmengine": {"state_dict": official_sd, "meta": {"seed": np.int64(3), "hist": np.zeros(2)}}}[layout]
    torch.save(obj, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = load_official_head(convl_head_only, path)
    assert any("weights_only=False" in str(w.message) for w in caught) == (layout == "mmengine")
    assert info["missing_prompt_keys"] == []
    sd = convl_head_only.state_dict()
    for k, v in official_sd.items():
        ours = k.replace("panoptic_head.pixel_decoder.", "pixel_decoder.", 1) if "pixel_decoder" in k \
            else k.replace("panoptic_head.", "head.", 1)
        assert torch.equal(sd[ours], v), k


def test_official_head_without_prompt_tensors_warns(tmp_path, convl_head_only, official_sd):
    sd = {k: v for k, v in official_sd.items()
          if not k.startswith(("panoptic_head.mask_tokens", "panoptic_head.pb_embedding", "panoptic_head.pos_linear"))}
    torch.save(sd, tmp_path / "h.pth")
    with pytest.warns(UserWarning, match="prompts unusable"):
        info = load_official_head(convl_head_only, tmp_path / "h.pth")
    assert len(info["missing_prompt_keys"]) == 4


def test_key_errors_name_every_bad_key(tmp_path, convl_head_only, official_sd):
    sd = dict(official_sd)
    del sd["panoptic_head.query_feat.weight"]
    del sd["panoptic_head.transformer_decoder.layers.3.norms.1.bias"]
    sd["panoptic_head.cls_embed.weight"] = torch.zeros(11, 256)
    sd["panoptic_head.level_embed.weight"] = torch.zeros(4, 256)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_official_head(convl_head_only, tmp_path / "bad.pth")
    msg = str(e.value)
    for key in ("head.query_feat.weight", "head.transformer_decoder.layers.3.norms.1.bias",
                "head.cls_embed.weight", "head.level_embed.weight", "(4, 256)", "(3, 256)", str(tmp_path / "bad.pth")):
        assert key in msg


def test_wrong_files_give_clear_errors(tmp_path, convl_head_only):
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_official_head(convl_head_only, text)
    good = tmp_path / "good.pth"
    torch.save({"a": torch.zeros(1000)}, good)
    trunc = tmp_path / "truncated.pth"
    trunc.write_bytes(good.read_bytes()[:600])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_official_head(convl_head_only, trunc)
    with pytest.raises(CheckpointError, match="not an OMG-Seg checkpoint"):
        load_official_head(convl_head_only, good)
    clip_like = tmp_path / "open_clip.bin"
    torch.save({"visual.trunk.stem.0.weight": torch.zeros(1), "transformer.resblocks.0.ln_1.weight": torch.zeros(1)},
               clip_like)
    with pytest.raises(CheckpointError, match="backbone_weights"):
        load_official_head(convl_head_only, clip_like)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_official_head(convl_head_only, tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        load_model("convl", weights=good)
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        load_model("no_such_model")


def test_our_format_round_trip_fp16(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY)
    path = save_checkpoint(tmp_path / "tiny.pth", model, vocabulary={"things": ["cup"], "stuff": ["table"]},
                           meta={"steps": 3}, half=True)
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == "omg_seg_ros/1" and obj["config"]["name"] == "omg_seg_tiny"
    assert all(v.dtype == torch.float16 for v in obj["model"].values() if v.is_floating_point())
    loaded, meta = load_model(path)
    assert meta["format"] == "omg_seg_ros/1" and meta["vocabulary"]["things"] == ["cup"]
    assert meta["meta"]["steps"] == 3 and meta["config"] == TINY and meta["text_weights"] is None
    ref = {k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    got = loaded.state_dict()
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    assert all(v.dtype == torch.float32 for v in got.values() if v.is_floating_point())
    # by name + weights, and the name must match the file's config
    loaded2, _ = load_model("tiny", weights=path)
    assert torch.equal(loaded2.head.query_feat.weight, loaded.head.query_feat.weight)
    with pytest.raises(CheckpointError, match="omg_seg_tiny"):
        load_model("convl", weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = loaded.forward_image(x).mask_logits
        b = loaded2.forward_image(x).mask_logits
    assert torch.equal(a, b)


def test_our_format_errors(tmp_path):
    p = tmp_path / "x.pth"
    torch.save({"format": "omg_seg_ros/1", "config": TINY.to_dict()}, p)
    with pytest.raises(CheckpointError, match="'model'"):
        load_model(p)
    torch.save({"format": "omg_seg_ros/1", "config": {**TINY.to_dict(), "bogus": 1}, "model": {}}, p)
    with pytest.raises(CheckpointError, match="bogus"):
        load_model(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd = build_model(TINY).state_dict()
    sd.pop("head.query_embed.weight")
    torch.save({"format": "omg_seg_ros/1", "config": TINY.to_dict(), "model": sd}, p)
    with pytest.raises(CheckpointError, match="head.query_embed.weight"):
        load_model(p)


def test_configs_of_older_checkpoints_still_load():
    """Checkpoints written before ModelConfig lost its unused `dtype` field store it; it is accepted and ignored,
    while any other unknown field is still refused."""
    from omg_seg_core.config import ModelConfig

    assert ModelConfig.from_dict({**TINY.to_dict(), "dtype": "float32"}) == TINY
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({**TINY.to_dict(), "dtyp": "float32"})
