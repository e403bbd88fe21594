"""Spatial hints for text requests: "the red box" + a point or box ("I'm pointing to it"): `SpatialHint`.

A hint is points (positive = "the one here", negative = "not this one") and/or boxes, in ORIGINAL-image pixels,
validated like prompts (preprocess.validate_prompts). The text ranking (text_request.py) multiplies each
candidate's rank by `hint_factor`:
- positive points: 1 when a point lies inside the candidate's mask, else exp(-d / scale) with d the distance (px)
  from the point to the mask's nearest pixel and scale = thresholds.text_hint_scale_px; several positive points
  count by the best of them (the one the user meant);
- boxes: the fraction of the mask inside the box (best box), at least 1e-3;
- negative points inside a mask: x NEGATIVE_FACTOR.
So a point inside beats a point near, a near one beats a far one, and with no hint nothing changes. A request
whose phrase is only a pointing word ("this", "that one") is a click: `is_deictic`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

#: Phrases that name nothing but the pointed-at object ("segment this", "that one").
DEICTIC = {"", "this", "that", "this one", "that one", "it", "here", "there", "this object", "that object",
           "this thing", "that thing", "the object", "the thing", "object", "thing"}
#: Rank factor of a candidate a negative point lies in ("not this one").
NEGATIVE_FACTOR = 0.01


@dataclass
class SpatialHint:
    """points float32 [P, 2] xy, labels int64 [P] (1 positive, 0 negative), boxes float32 [B, 4] xyxy."""

    points: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray

    @classmethod
    def parse(cls, points: Any, labels: Any, boxes: Any, image_size: tuple[int, int]) -> Optional["SpatialHint"]:
        """None when nothing is given; else the validated hint (ValueError naming the bad value)."""
        empty = all(v is None or np.asarray(v).size == 0 for v in (points, boxes))
        if empty:
            if labels is not None and np.asarray(labels).size:
                raise ValueError("hint labels given without hint points")
            return None
        from .preprocess import validate_prompts

        try:
            p, lab, b = validate_prompts(points, labels, boxes, image_size)
        except ValueError as e:
            raise ValueError(f"hint: {e}") from None
        return cls(p, lab, b)

    @property
    def positive(self) -> bool:
        """True when the hint says where the object IS (a positive point or a box)."""
        return bool((self.labels == 1).any() or len(self.boxes))

    def describe(self) -> str:
        parts = [f"{'point' if l else 'negative point'} ({x:.0f}, {y:.0f})" for (x, y), l in zip(self.points, self.labels)]
        parts += [f"box ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f})" for x0, y0, x1, y1 in self.boxes]
        return ", ".join(parts)


def hint_factor(masks: np.ndarray, hint: SpatialHint, scale_px: float) -> np.ndarray:
    """float64 [K] rank factors in (0, 1] of candidate masks bool [K, H, W] (module docstring)."""
    k = masks.shape[0]
    out = np.ones(k)
    pos = hint.points[hint.labels == 1]
    neg = hint.points[hint.labels == 0]
    for i in range(k):
        ys, xs = np.nonzero(masks[i])
        if len(ys) == 0:
            out[i] = 0.0
            continue
        f = 1.0
        if len(pos):
            d = np.sqrt(((xs[None] + 0.5 - pos[:, :1]) ** 2 + (ys[None] + 0.5 - pos[:, 1:]) ** 2).min(1))
            f *= float(np.max(np.where(_on(masks[i], pos), 1.0, np.exp(-d / scale_px))))
        if len(hint.boxes):
            cx, cy = xs + 0.5, ys + 0.5
            inb = [((cx >= b[0]) & (cx < b[2]) & (cy >= b[1]) & (cy < b[3])).mean() for b in hint.boxes]
            f *= max(float(max(inb)), 1e-3)
        if len(neg) and _on(masks[i], neg).any():
            f *= NEGATIVE_FACTOR
        out[i] = f
    return out


def _on(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """bool [P]: is each point (x, y) [P, 2] on a pixel of `mask` [H, W]."""
    h, w = mask.shape
    return mask[np.clip(points[:, 1].astype(int), 0, h - 1), np.clip(points[:, 0].astype(int), 0, w - 1)]


def is_deictic(phrase: str) -> bool:
    """True for a phrase that only points ("this", "that one"): with a hint, the request is a click."""
    return phrase.strip().lower() in DEICTIC


__all__ = ["SpatialHint", "hint_factor", "is_deictic", "DEICTIC", "NEGATIVE_FACTOR"]
