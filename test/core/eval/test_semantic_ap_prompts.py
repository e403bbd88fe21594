"""mIoU, mask AP and prompt mIoU on hand-checked cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omg_seg_core.eval.latency import LatencyRecorder
from omg_seg_core.eval.mask_ap import MaskAPEvaluator
from omg_seg_core.eval.prompts import PromptEvaluator
from omg_seg_core.eval.semantic import SemanticEvaluator
from omg_seg_core.structures import SEMANTIC_IGNORE, Segments

IGN = SEMANTIC_IGNORE


def test_miou_hand_case() -> None:
    # 2x4 image, 3 classes. GT row 0: 0 0 1 1, row 1: 2 2 IGN IGN.  Pred row 0: 0 1 1 1, row 1: 2 IGN 0 0.
    gt = np.array([[0, 0, 1, 1], [2, 2, IGN, IGN]], np.uint16)
    pred = np.array([[0, 1, 1, 1], [2, IGN, 0, 0]], np.uint16)
    ev = SemanticEvaluator(["a", "b", "c"])
    ev.process(pred, gt)
    r = ev.evaluate()
    # Ignored GT pixels (row 1, cols 2-3) drop out, so the pred 0s there do not count.
    # class 0: TP 1 (0,0); GT 2 px; pred 1 px -> union 2 -> IoU 0.5
    # class 1: TP 2; GT 2; pred 3 -> union 3 -> IoU 2/3
    # class 2: TP 1; GT 2 (one predicted unlabelled = a miss); pred 1 -> union 2 -> IoU 0.5
    assert r["per_class"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 0.5})
    assert r["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert r["pixel_accuracy"] == pytest.approx(4 / 6)


def test_miou_identical_and_agrees_with_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    rng = np.random.default_rng(1)
    ev = SemanticEvaluator([str(i) for i in range(4)])
    gt = rng.integers(0, 4, (20, 30)).astype(np.uint16)
    ev.process(gt, gt)
    assert ev.evaluate()["miou"] == 1.0
    ev.reset()
    tm = MulticlassJaccardIndex(num_classes=4, average="none", ignore_index=255)
    for _ in range(3):
        gt = rng.integers(0, 4, (20, 30)).astype(np.uint16)
        gt[rng.random(gt.shape) < 0.1] = IGN
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 4, gt.shape)).astype(np.uint16)
        pred[gt == IGN] = rng.integers(0, 4, int((gt == IGN).sum()))
        ev.process(pred, gt)
        tm.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(np.where(gt == IGN, 255, gt).astype(np.int64)))
    assert list(ev.evaluate()["per_class"].values()) == pytest.approx(tm.compute().tolist(), abs=1e-6)


def test_miou_rejects_bad_input() -> None:
    ev = SemanticEvaluator(["a"])
    with pytest.raises(ValueError, match="differ in size"):
        ev.process(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"class id\(s\) \[5\]"):
        ev.process(np.zeros((2, 2)), np.full((2, 2), 5))


def _instances(masks: np.ndarray, classes: list[int], scores: list[float]) -> Segments:
    return Segments(masks, scores, classes, [str(c) for c in classes], [True] * len(classes), task="instances")


def test_mask_ap_identical_is_one_and_half_recall_hand_value() -> None:
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 9:15, 4:14] = True
    ev = MaskAPEvaluator(["x", "y", "floor"], [True, True, False])
    ev.process(_instances(masks, [0, 1], [0.9, 0.8]), masks, np.array([0, 1]))
    r = ev.evaluate()
    assert r["ap"] == pytest.approx(1.0) and r["ap50"] == pytest.approx(1.0)
    assert r["per_class"] == pytest.approx({"x": 1.0, "y": 1.0})
    # Two GT of class x, only one predicted (exactly): precision 1 up to recall 0.5, then nothing.
    # COCO interpolates at 101 recall points 0, 0.01, ..., 1: 51 of them (0..0.5) have precision 1 -> AP = 51/101.
    ev = MaskAPEvaluator(["x", "y", "floor"], [True, True, False])
    ev.process(_instances(masks[:1], [0], [0.9]), masks, np.array([0, 0]))
    assert ev.evaluate()["ap"] == pytest.approx(51 / 101)
    # Nothing predicted: AP exactly 0; no GT at all: nan.
    ev = MaskAPEvaluator(["x"], [True])
    ev.process(Segments.empty((16, 16)), masks[:1], np.array([0]))
    assert ev.evaluate()["ap"] == 0.0


def test_prompt_miou() -> None:
    g = np.zeros((2, 4, 4), bool)
    g[0, :2], g[1, :, :2] = True, True
    p = g.copy()
    p[1, :, 2] = True  # second prompt: 8 px GT, 12 px predicted -> IoU 8/12
    ev = PromptEvaluator()
    assert ev.process(p, g, ["point", "box"]) == pytest.approx([1.0, 2 / 3])
    r = ev.evaluate()
    assert r["miou"] == pytest.approx((1 + 2 / 3) / 2) and r["box"]["count"] == 1
    with pytest.raises(ValueError, match="unknown prompt kind"):
        ev.process(p, g, ["point", "lasso"])


def test_latency_percentiles() -> None:
    rec = LatencyRecorder()
    for ms in range(1, 101):  # 1..100 ms
        rec.process({"total": float(ms)})
    s = rec.evaluate()["total"]
    # numpy's linear percentile of 1..100: p50 = 50.5, p95 = 95.05.
    assert s["p50"] == pytest.approx(50.5) and s["p95"] == pytest.approx(95.05) and s["count"] == 100
