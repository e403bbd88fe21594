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

    Masks are blended with `alpha` in draw order (later segments on top), outlined with 1-2 px contours, and
    labelled at the top-left of their box (kept inside the image) on a dark backing box for readability.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB uint8 [H, W, 3], got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    if image.shape[:2] != segments.image_size:
        raise ValueError(f"image size {image.shape[:2]} != segments size {segments.image_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    colors = [np.array(color_for(segment_color_key(segments, i)), np.float32) for i in range(len(segments))]
    for i, m in enumerate(segments.masks):
        if m.any():
            out[m] = out[m] * (1.0 - alpha) + colors[i] * alpha
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    thick = max(1, round(max(h, w) / 500))
    if contours:
        for i, m in enumerate(segments.masks):
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if cs:
                cv2.drawContours(out, cs, -1, tuple(int(c) for c in colors[i]), thick, lineType=cv2.LINE_AA)
    if labels:
        fs = font_scale if font_scale is not None else max(0.35, max(h, w) / 1400)
        for i in range(len(segments)):
            if not segments.masks[i].any():
                continue
            text = segment_label(segments, i)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
            x1, y1 = int(segments.boxes[i][0]), int(segments.boxes[i][1])
            x = min(max(0, x1), max(0, w - tw - 2))
            y = min(max(th + base, y1 + th + base), h - 1)
            cv2.rectangle(out, (x, y - th - base), (x + tw + 2, y), (0, 0, 0), -1)
            cv2.putText(out, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, fs,
                        tuple(int(c) for c in colors[i]), 1, cv2.LINE_AA)
    return out


#: Alias used by omg_seg_ros/outputs.py.
draw_segments = render_overlay

__all__ = ["render_overlay", "draw_segments", "color_for", "segment_color_key", "segment_label"]
