"""Depth3DEvaluator: centroid error, 3D IoU, valid / answered fractions; merging equals one evaluation."""
import numpy as np
import pytest

from omg_seg_core.eval.depth3d import Depth3DEvaluator, box_iou_3d
from omg_seg_core.structures import QUALITY_OK, Boxes3D, Segments


def _pred(masks, positions, sizes, valid):
    n = len(masks)
    seg = Segments(masks, np.ones(n), np.zeros(n), ["box"] * n, np.ones(n, bool))
    b = Boxes3D.empty(n)
    b.position[:] = positions
    b.surface[:] = positions
    b.size[:] = sizes
    b.quality[:] = np.where(valid, QUALITY_OK, 0)
    seg.boxes_3d = b
    return seg


def test_box_iou_3d():
    c, s = np.zeros(3), np.ones(3)
    assert box_iou_3d(c, s, c, s) == pytest.approx(1.0)
    assert box_iou_3d(c, s, c + [0.5, 0, 0], s) == pytest.approx(0.5 / 1.5)
    assert box_iou_3d(c, s, c + 2, s) == 0.0


def test_errors_ious_and_fractions():
    m = np.zeros((3, 20, 20), bool)
    m[0, :5, :5] = m[1, 10:, 10:] = m[2, :5, 10:] = True
    gt_c = np.array([[0, 0, 1.0], [0.2, 0, 1.2], [0, 0, 3.0]])  # the third is out of range (> 1.5 m)
    gt_s = np.full((3, 3), 0.1)
    pred = _pred(m[:2], [[0.01, 0, 1.0], [0.2, 0, 1.2]], [[0.1] * 3] * 2, [True, False])
    ev = Depth3DEvaluator()
    ev.process(pred, m, gt_c, gt_s)
    r = ev.evaluate()
    assert r["objects"] == 2 and r["matched"] == 2 and r["valid"] == 1
    assert r["centroid_error_cm_median"] == pytest.approx(1.0)
    assert r["iou_3d_mean"] == pytest.approx(0.09 / 0.11)
    assert r["valid_fraction"] == 0.5 and r["answered_fraction"] == 0.5
    a, b = Depth3DEvaluator(), Depth3DEvaluator()
    a.process(pred, m, gt_c, gt_s)
    b.process(pred, m, gt_c, gt_s)
    a.merge(b)
    ev.process(pred, m, gt_c, gt_s)
    assert a.evaluate() == ev.evaluate()
