"""Segments: the one result type every task returns; empty results must behave like any other."""
import numpy as np

from omg_seg_core.structures import Segments


def test_empty_segments_support_every_accessor() -> None:
    seg = Segments.empty((4, 6), task="panoptic", embed_dim=8)
    assert len(seg) == 0 and seg.image_size == (4, 6)
    assert seg.areas().shape == (0,) and seg.areas().dtype == np.int64
    assert seg.boxes.shape == (0, 4) and seg.embeddings.shape == (0, 8)
    assert (seg.semantic_map(ignore=255) == 255).all()
    assert len(seg.select(np.zeros(0, bool))) == 0


def test_areas_and_boxes_follow_the_masks() -> None:
    masks = np.zeros((2, 4, 6), bool)
    masks[0, 1:3, 2:5] = True   # 2 x 3 pixels
    masks[1, 0, 0] = True
    seg = Segments(masks, [0.9, 0.5], [3, 7], ["cup", "table"], [True, False])
    assert seg.areas().tolist() == [6, 1]
    assert seg.boxes.tolist() == [[2, 1, 5, 3], [0, 0, 1, 1]]  # xyxy, exclusive max
    assert seg.select([1]).class_names == ["table"]
