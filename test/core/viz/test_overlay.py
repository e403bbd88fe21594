"""Overlay renderer: blending, stable colours per track id / class, labels, input checks."""
import numpy as np
import pytest

from omg_seg_core.structures import Segments
from omg_seg_core.viz.overlay import color_for, render_overlay, segment_color_key, segment_label


def _segments(track_ids=None):
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:30, 10:40] = True
    masks[1, 35:55, 45:75] = True
    return Segments(masks, [0.91, 0.5], [0, 3], ["cup", "floor"], [True, False], track_ids=track_ids,
                    task="panoptic")


def test_overlay_blends_masks_only():
    img = np.full((60, 80, 3), 100, np.uint8)
    seg = _segments()
    out = render_overlay(img, seg, alpha=0.5, contours=False, labels=False)
    assert out.shape == img.shape and out.dtype == np.uint8
    c = np.array(color_for(segment_color_key(seg, 0)), np.float32)
    np.testing.assert_allclose(out[20, 20], 100 * 0.5 + c * 0.5, atol=0.5)  # rounded to the nearest integer
    np.testing.assert_array_equal(out[5, 70], img[5, 70])  # background untouched
    assert render_overlay(img, seg, alpha=0.0, contours=False, labels=False).tolist() == img.tolist()


def test_labels_and_contours_are_drawn():
    img = np.zeros((60, 80, 3), np.uint8)
    seg = _segments(track_ids=[7, 0])
    plain = render_overlay(img, seg, contours=False, labels=False)
    full = render_overlay(img, seg)
    assert (full != plain).any(axis=2).sum() > 50
    assert segment_label(seg, 0) == "cup #7 0.91" and segment_label(seg, 1) == "floor 0.50"


def test_colours_stable_per_track_and_distinct():
    a, b = _segments(track_ids=[7, 0]), _segments(track_ids=[0, 0])
    moved = a.select([0])
    assert segment_color_key(a, 0) == segment_color_key(moved, 0) == 7
    assert segment_color_key(a, 1) == segment_color_key(b, 1)  # stuff: colour by class
    cols = {color_for(k) for k in range(1, 40)}
    assert len(cols) == 39


def test_overlay_rejects_mismatched_input():
    seg = _segments()
    with pytest.raises(ValueError, match=r"\(30, 80\)"):
        render_overlay(np.zeros((30, 80, 3), np.uint8), seg)
    with pytest.raises(ValueError, match="float32"):
        render_overlay(np.zeros((60, 80, 3), np.float32), seg)
    with pytest.raises(ValueError, match="1.5"):
        render_overlay(np.zeros((60, 80, 3), np.uint8), seg, alpha=1.5)


def test_later_segment_wins_where_masks_overlap_and_empty_masks_are_skipped():
    img = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((3, 60, 80), bool)
    masks[0, 10:30, 10:40] = True
    masks[1, 20:40, 30:60] = True  # overlaps mask 0 at rows 20-29, cols 30-39
    seg = Segments(masks, [0.9, 0.8, 0.1], [0, 1, 2], ["cup", "box", "ghost"], [True, True, True], task="instances")
    out = render_overlay(img, seg, alpha=1.0, contours=False, labels=False)
    np.testing.assert_array_equal(out[25, 35], color_for(segment_color_key(seg, 1)))
    np.testing.assert_array_equal(out[12, 12], color_for(segment_color_key(seg, 0)))
    assert render_overlay(img, Segments.empty((60, 80)), contours=True, labels=True).tolist() == img.tolist()
