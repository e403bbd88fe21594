"""Draw `Segments` over an RGB image: alpha-blended masks, contours, "name #id score" labels.

Colours are stable: a tracked segment's colour depends only on its track id, an untracked thing's on its class
and index, a stuff segment's on its class — so the same object keeps its colour from frame to frame.
Used by the ROS node's debug image and the demo.
"""
from __future__ import annotations

import colorsys
from typing import Optional

import cv2
import numpy as np

from ..structures import Segments

_GOLDEN = 0.618033988749895


def color_for(key: int) -> tuple[int, int, int]:
    """Distinct, stable RGB colour for an integer key (golden-ratio hue steps, alternating brightness)."""
    key = int(key)
    h = (key * _GOLDEN) % 1.0
    s = 0.65 + 0.3 * ((key // 3) % 2)
    v = 0.95 - 0.25 * ((key // 7) % 2)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def segment_color_key(segments: Segments, i: int) -> int:
    """The colour key of segment i: track id, else class (stuff / semantic), else class and index (things)."""
    if segments.track_ids[i] > 0:
        return int(segments.track_ids[i])
    c = int(segments.class_ids[i])
    if not segments.is_thing[i] or segments.task == "semantic":
        return 100_003 + c
    return 200_003 + 1009 * max(c, 0) + i


def segment_label(segments: Segments, i: int) -> str:
    """"name #track score" (parts omitted when unknown): e.g. "cup #3 0.87"."""
    parts = [segments.class_names[i] or (f"prompt {i}" if segments.task == "prompt" else f"seg {i}")]
    if segments.track_ids[i] > 0:
        parts.append(f"#{int(segments.track_ids[i])}")
    parts.append(f"{float(segments.scores[i]):.2f}")
    return " ".join(parts)


def render_overlay(image: np.ndarray, segments: Segments, alpha: float = 0.5, contours: bool = True,
                   labels: bool = True, font_scale: Optional[float] = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] + Segments at the same (H, W) -> new RGB uint8 [H, W, 3].

    Masks are blended with `alpha` (where masks overlap, the later segment is shown), outlined with 1-2 px
    contours, and labelled at the top-left of their box (kept inside the image) on a dark backing box. One blend
    pass over a segment-index map, and each mask is only touched inside its tight box: at 640x480 with 15
    segments about 11 ms instead of 79 ms for one full-frame pass per mask (the node's per-frame budget).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB uint8 [H, W, 3], got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    if image.shape[:2] != segments.image_size:
        raise ValueError(f"image size {image.shape[:2]} != segments size {segments.image_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h, w = image.shape[:2]
    idx = np.zeros((h, w), np.uint8 if len(segments) < 255 else np.uint16)
    lut = np.zeros((len(segments) + 1, 3), np.uint8)
    drawn = []
    for i in range(len(segments)):
        x0, y0, x1, y1 = segments.box_slice(i)
        if x1 <= x0 or y1 <= y0:
            continue
        m = segments.masks[i, y0:y1, x0:x1]
        col = color_for(segment_color_key(segments, i))
        lut[i + 1] = col
        idx[y0:y1, x0:x1][m] = i + 1
        drawn.append((i, x0, y0, m, col))
    if idx.dtype == np.uint8:  # cv2.LUT per channel: 0.5 ms at 640x480 where lut[idx] takes 3 ms
        table = np.zeros((256, 1, 3), np.uint8)
        table[: len(lut), 0] = lut
        colour = cv2.LUT(cv2.merge([idx, idx, idx]), table)
    else:
        colour = lut[idx]
    out = image.copy()
    cv2.copyTo(cv2.addWeighted(image, 1.0 - alpha, colour, alpha, 0.0), (idx > 0).view(np.uint8), out)
    thick = max(1, round(max(h, w) / 500))
    if contours:
        for i, x0, y0, m, col in drawn:
            cs, _ = cv2.findContours(m.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
            if cs:
                cv2.drawContours(out, cs, -1, col, thick, lineType=cv2.LINE_AA)
    if labels:
        fs = font_scale if font_scale is not None else max(0.35, max(h, w) / 1400)
        for i, x0, y0, m, col in drawn:
            text = segment_label(segments, i)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
            x = min(max(0, x0), max(0, w - tw - 2))
            y = min(max(th + base, y0 + th + base), h - 1)
            cv2.rectangle(out, (x, y - th - base), (x + tw + 2, y), (0, 0, 0), -1)
            cv2.putText(out, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, fs, col, 1, cv2.LINE_AA)
    return out


__all__ = ["render_overlay", "color_for", "segment_color_key", "segment_label"]
