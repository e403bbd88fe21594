"""The predictor end to end on ONNX Runtime vs PyTorch: same panoptic ids, masks and prompt masks.

Real predictor, real onnxruntime sessions; the text tower is a shrunken random open_clip text transformer with the
small model's class-embedding width (as in test/core/predict/test_predictor.py), so nothing is downloaded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omg_seg_core.predict import build_predictor
from omg_seg_core.text.clip_text import ClipTextEncoder

SMALL_TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)


@pytest.fixture(scope="module")
def predictors(tiny_model, tiny_bundle, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("OMG_SEG_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)
    enc = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=tiny_model.cfg.class_embed_dim)
    kw = dict(text_encoder=enc, vocabulary="robot_workspace", long_side=160)
    p_torch = build_predictor(tiny_model, **kw)
    p_ort = build_predictor(tiny_model, backend="onnxruntime", onnx_dir=tiny_bundle.root, threads=1, **kw)
    yield p_torch, p_ort
    mp.undo()


def _scene(h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    img[h // 6: h // 2, w // 8: w // 2] = (220, 30, 30)
    img[h // 2: h - 5, w // 2: w - 10] = (30, 30, 220)
    return img


def test_panoptic_and_prompts_match_torch_at_the_export_size(predictors):
    p_torch, p_ort = predictors
    assert p_ort.backend.name == "onnxruntime"
    img = _scene(120, 160)  # resized to long side 160 -> padded 128x160 == the export's static size
    for p in predictors:
        p.set_image(img)
    a, b = p_torch.panoptic(), p_ort.panoptic()
    assert len(a) > 0, "degenerate input: no panoptic segment"
    np.testing.assert_array_equal(a.extra["panoptic_ids"], b.extra["panoptic_ids"])
    assert a.masks.shape == b.masks.shape == (len(a), 120, 160)
    assert (a.masks != b.masks).mean() < 1e-3
    pa = p_torch.prompt(points=np.array([[40.0, 40.0]]), point_labels=np.array([1]),
                        boxes=np.array([[80.0, 60.0, 150.0, 115.0]]))
    pb = p_ort.prompt(points=np.array([[40.0, 40.0]]), point_labels=np.array([1]),
                      boxes=np.array([[80.0, 60.0, 150.0, 115.0]]))
    assert pa.masks.shape == pb.masks.shape and (pa.masks != pb.masks).mean() < 1e-3


def test_other_aspect_ratio_keeps_original_geometry(predictors):
    _, p_ort = predictors
    p_ort.set_image(_scene(90, 160))  # padded 96x160 by the predictor, 128x160 inside the static graph
    seg = p_ort.panoptic()
    assert seg.masks.shape[1:] == (90, 160)
    assert p_ort.features.mask_logits.shape[-2:] == (24, 40)  # cropped back to the predictor's padded size


def test_predictor_long_side_sets_the_first_export_size(tiny_model, tmp_path, monkeypatch):
    """Without an export bundle the ONNX Runtime backend exports on construction at the predictor's long side
    (4:3 landscape), not the model's default, so a robot's first frame at that size pays no export."""
    monkeypatch.setenv("OMG_SEG_CACHE", str(tmp_path))
    torch.manual_seed(0)
    enc = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=tiny_model.cfg.class_embed_dim)
    p = build_predictor(tiny_model, backend="onnxruntime", threads=1, max_prompts=2, text_encoder=enc,
                        vocabulary="robot_workspace", long_side=160)
    assert list(p.backend._by_size) == [(128, 160)]  # 160 x 120 -> padded to 32: 128 x 160
    p.set_image(_scene(120, 160))
    assert list(p.backend._by_size) == [(128, 160)]  # the frame reused the construction-time export
