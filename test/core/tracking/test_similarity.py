"""Grid-sampled, bit-packed mask IoU against exact IoU; box fallback for tiny masks."""
from __future__ import annotations

import numpy as np
import pytest

from omg_seg_core.structures import mask_iou_matrix
from omg_seg_core.structures import masks_to_boxes
from omg_seg_core.tracking.similarity import GridSampler, box_iou, packed_iou


def ellipses(rng, n, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    c = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], size=(n, 2))
    r = rng.uniform(0.08, 0.25, size=(n, 2)) * min(h, w)
    return ((xx - c[:, 0, None, None]) / r[:, 0, None, None]) ** 2 + \
        ((yy - c[:, 1, None, None]) / r[:, 1, None, None]) ** 2 <= 1


@pytest.mark.parametrize("size", [(240, 320), (480, 640), (97, 131)])
def test_grid_iou_close_to_exact(size):
    rng = np.random.default_rng(1)
    a, b = ellipses(rng, 12, *size), ellipses(rng, 9, *size)
    ba, bb = masks_to_boxes(a), masks_to_boxes(b)
    gs = GridSampler(size, 64)
    pa, ca = gs.sample(a, ba)
    pb, cb = gs.sample(b, bb)
    est = packed_iou(pa, ca, ba, pb, cb, bb)
    exact = mask_iou_matrix(a, b)
    assert np.abs(est - exact).max() < 0.08
    assert (est[exact == 0] == 0).all()
    # Sampling inside boxes only equals sampling the whole image.
    full = a[:, gs.offset::gs.stride, gs.offset::gs.stride].reshape(len(a), -1)
    assert (ca == full.sum(1)).all()


def test_tiny_masks_use_box_iou_and_empty_masks_are_zero():
    h, w = 240, 320
    m = np.zeros((3, h, w), bool)
    m[0, 100:103, 100:103] = True   # 3x3: below one grid cell
    m[1, 101:104, 101:104] = True
    boxes = masks_to_boxes(m)
    gs = GridSampler((h, w), 64)
    p, c = gs.sample(m, boxes)
    iou = packed_iou(p, c, boxes, p, c, boxes)
    assert iou[0, 1] == pytest.approx(box_iou(boxes[:1], boxes[1:2])[0, 0]) == pytest.approx(4 / 14)
    assert iou[2, 2] == 0 and iou[0, 2] == 0
    with pytest.raises(ValueError, match="GridSampler"):
        gs.sample(np.zeros((1, 10, 10), bool), np.zeros((1, 4)))
