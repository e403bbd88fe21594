"""Prompt answers refined by the prompt's own geometry (not in the official code; TaskThresholds switches).

A small model's prompt mask often leaks: onto a neighbouring object, along the table edge, or as specks far away.
The prompt itself says where the object is, so after `prompt()` has chosen its answer (prompt_select.py):
- a box prompt keeps the pixels inside its box grown by `box_prompt_margin` of the box's width / height per side
  (`crop_to_boxes`; margin < 0: off);
- a click keeps the 8-connected part of its mask that contains the clicked pixel (`keep_clicked_component`;
  `click_connected: false`: off); when the mask misses the click the mask is left as it is.
Measured on held-out scenes in docs/predictor.md. Coordinates: boxes [B, 4] xyxy and points [P, 2] xy in the
masks' (original image) pixels; masks bool [N, H, W]. Both return copies and never modify their input.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..config import TaskThresholds
from ..structures import Segments

#: 8-connectivity: diagonal neighbours belong to the same part (thin diagonal structures stay whole).
_EIGHT = np.ones((3, 3), bool)


def crop_to_boxes(masks: np.ndarray, boxes: np.ndarray, margin: float) -> np.ndarray:
    """masks bool [B, H, W] with pixels outside boxes [B, 4] grown by `margin` x box width/height per side set
    False; margin < 0 returns the masks unchanged (the same array)."""
    if margin < 0 or len(masks) == 0:
        return masks
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) != len(masks):
        raise ValueError(f"crop_to_boxes: {len(masks)} masks but {len(boxes)} boxes")
    h, w = masks.shape[1:]
    grow = margin * np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, 1) * np.array([-1, -1, 1, 1], np.float32)
    g = boxes + grow
    x0 = np.clip(np.floor(g[:, 0]), 0, w).astype(int)
    y0 = np.clip(np.floor(g[:, 1]), 0, h).astype(int)
    x1 = np.clip(np.ceil(g[:, 2]), 0, w).astype(int)
    y1 = np.clip(np.ceil(g[:, 3]), 0, h).astype(int)
    out = np.zeros_like(masks)
    for i in range(len(masks)):
        out[i, y0[i]:y1[i], x0[i]:x1[i]] = masks[i, y0[i]:y1[i], x0[i]:x1[i]]
    return out


def keep_clicked_component(masks: np.ndarray, points: np.ndarray) -> np.ndarray:
    """masks bool [P, H, W] reduced to the 8-connected component containing points [P, 2] (xy, the pixel
    floor(x), floor(y), clipped to the image); a mask that does not contain its point is returned unchanged."""
    points = np.asarray(points, np.float32).reshape(-1, 2)
    if len(points) != len(masks):
        raise ValueError(f"keep_clicked_component: {len(masks)} masks but {len(points)} points")
    out = masks.copy()
    if len(masks) == 0:
        return out
    h, w = masks.shape[1:]
    xs = np.clip(np.floor(points[:, 0]), 0, w - 1).astype(int)
    ys = np.clip(np.floor(points[:, 1]), 0, h - 1).astype(int)
    for i, (x, y) in enumerate(zip(xs, ys)):
        if not masks[i, y, x]:
            continue
        labels, _ = ndimage.label(masks[i], structure=_EIGHT)
        out[i] = labels == labels[y, x]
    return out


def refine_prompt_masks(seg: Segments, points: np.ndarray, boxes: np.ndarray, thresholds: TaskThresholds) -> Segments:
    """`prompt()`'s answers (rows: positive points [P, 2], then boxes [B, 4]) with box rows cut to their grown box
    and click rows to their clicked part, as `thresholds` say; boxes recomputed. `seg` itself is not modified."""
    n = len(points)
    cut_boxes = len(boxes) > 0 and thresholds.box_prompt_margin >= 0
    cut_clicks = n > 0 and thresholds.click_connected
    if not (cut_boxes or cut_clicks):
        return seg
    masks = seg.masks.copy()
    if cut_clicks:
        masks[:n] = keep_clicked_component(masks[:n], points)
    if cut_boxes:
        masks[n:] = crop_to_boxes(masks[n:], boxes, thresholds.box_prompt_margin)
    return replace(seg, masks=masks, boxes=None)


__all__ = ["crop_to_boxes", "keep_clicked_component", "refine_prompt_masks"]
