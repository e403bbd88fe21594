"""Segments: the one result type every task returns; empty results must behave like any other."""
import numpy as np
import pytest

from omg_seg_core.structures import Segments, mask_extent, masks_to_boxes


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


def test_masks_to_boxes_matches_the_extremes_of_each_mask() -> None:
    """Against the definition (min / max + 1 of the pixel indices), on scattered and blob masks, an empty one, a
    one-pixel one at the far corner, and masks given as a strided view (every other column)."""
    rng = np.random.default_rng(3)
    masks = rng.random((6, 37, 53)) < 0.02
    masks[1] = False
    masks[2] = False
    masks[2, 36, 52] = True
    masks[3, 5:9, 40:41] = True
    for m in (masks, masks[:, :, ::2], masks[::-1]):
        want = np.zeros((len(m), 4), np.float32)
        for i, mask in enumerate(m):
            ys, xs = np.nonzero(mask)
            if ys.size:
                want[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        np.testing.assert_array_equal(masks_to_boxes(m), want)
    assert masks_to_boxes(np.zeros((2, 0, 5), bool)).tolist() == [[0, 0, 0, 0]] * 2
    weights = np.zeros((4, 5), np.float32)
    weights[1:3, 2] = 0.25                          # a numeric mask: its nonzero pixels
    assert mask_extent(weights) == (2, 1, 3, 3) and mask_extent(weights * 0) is None


def _overlapping() -> Segments:
    rng = np.random.default_rng(0)
    masks = rng.random((5, 24, 32)) < 0.3          # scattered pixels: boxes span most of the image
    masks[2] = False                                # one empty mask
    masks[3] = False
    masks[3, 5:9, 10:20] = True                     # a compact one on top of the others
    return Segments(masks, np.ones(5), [4, -1, 2, 9, 1], ["a", "none", "b", "c", "d"],
                    [True, True, False, True, False], track_ids=[7, 0, 0, 70000, 3])


def test_label_maps_match_a_plain_per_pixel_reference() -> None:
    seg = _overlapping()
    ref_sem = np.full(seg.image_size, 65535, np.uint16)
    ref_inst = np.zeros(seg.image_size, np.uint16)
    for i, m in enumerate(seg.masks):               # later segments win; no class (-1) is skipped
        if seg.class_ids[i] >= 0:
            ref_sem[m] = seg.class_ids[i]
        if seg.is_thing[i]:
            ref_inst[m] = min(seg.track_ids[i] if seg.track_ids[i] > 0 else i + 1, 65535)
    np.testing.assert_array_equal(seg.semantic_map(), ref_sem)
    np.testing.assert_array_equal(seg.instance_id_map(), ref_inst)
    assert seg.instance_id_map().max() == 65535     # 70000 is clipped to the mono16 range


def test_paint_checks_the_number_of_values() -> None:
    seg = _overlapping()
    out = seg.paint(np.arange(5), 99)
    assert out.dtype == np.uint16 and (out[~seg.masks.any(0)] == 99).all()
    with pytest.raises(ValueError, match="2 values for 5 segments"):
        seg.paint([1, 2], 0)
