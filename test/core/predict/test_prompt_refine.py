"""Prompt answers refined by the prompt's geometry (prompt_refine.py): box crop and clicked component."""
import numpy as np
import pytest

from omg_seg_core.config import TaskThresholds
from omg_seg_core.predict.prompt_refine import crop_to_boxes, keep_clicked_component


def test_crop_to_boxes_keeps_the_grown_box_only():
    masks = np.ones((2, 40, 50), bool)
    boxes = np.array([[10, 5, 30, 25], [-5, 30, 60, 45]], np.float32)  # the second one crosses the image border
    out = crop_to_boxes(masks, boxes, 0.1)  # grown by 2 px per side (0.1 x 20)
    ref = np.zeros_like(masks)
    ref[0, 3:27, 8:32] = True
    ref[1, 28:40, 0:50] = True  # y from 30 - 1.5 (floor 28), clipped at the image
    np.testing.assert_array_equal(out, ref)
    assert masks.all()  # a copy: the input is untouched
    assert crop_to_boxes(masks, boxes, -1) is masks
    with pytest.raises(ValueError, match="2 masks but 1 boxes"):
        crop_to_boxes(masks, boxes[:1], 0.1)


def test_a_click_keeps_the_part_of_its_mask_under_it():
    masks = np.zeros((3, 20, 30), bool)
    masks[:, 2:8, 2:8] = True      # the clicked object
    masks[:, 8:10, 8:10] = True    # touches it diagonally only: same part (8-connected)
    masks[:, 12:18, 20:28] = True  # a leak onto another object
    points = np.array([[4.5, 3.2], [25, 15], [15, 15]], np.float32)  # third: a click the mask misses
    out = keep_clicked_component(masks, points)
    ref0 = masks[0].copy()
    ref0[12:18, 20:28] = False
    np.testing.assert_array_equal(out[0], ref0)
    np.testing.assert_array_equal(out[1], masks[1] & ~ref0)
    np.testing.assert_array_equal(out[2], masks[2])  # unchanged: nothing to anchor the part on
    assert masks[:, 12:18, 20:28].all()  # the input is untouched
    assert keep_clicked_component(masks[:0], points[:0]).shape == (0, 20, 30)
    with pytest.raises(ValueError, match="3 masks but 2 points"):
        keep_clicked_component(masks, points[:2])


def test_switches_are_validated():
    with pytest.raises(ValueError, match="box_prompt_margin"):
        TaskThresholds().updated(box_prompt_margin="wide")
    with pytest.raises(ValueError, match="click_connected"):
        TaskThresholds().updated(click_connected="yes")
