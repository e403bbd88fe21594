"""Depth images in metres: unit conversion by encoding (REP 117), size matching to the colour image, and pairing
colour and depth frames by stamp.

A depth image here is float32 [H, W] metres with NaN where there is no usable reading. REP 117: 0 and NaN mean "no
reading", +inf "too far", -inf "too close"; all of them become NaN (none is a distance an object is at).
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, Optional, TypeVar

import numpy as np

#: Depth encodings understood (sensor_msgs image_encodings; matched case-insensitively), and their unit in metres.
DEPTH_ENCODINGS = {"16UC1": 0.001, "MONO16": 0.001, "32FC1": 1.0}

#: Two images have "the same aspect" when W/H differ by less than this fraction.
ASPECT_TOLERANCE = 0.01


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Raw depth [H, W] (uint16 millimetres for 16UC1 / mono16, float32 metres for 32FC1) -> float32 metres, NaN
    where invalid (0, NaN, +-inf). ValueError for another encoding or shape."""
    if str(encoding).upper() not in DEPTH_ENCODINGS:
        raise ValueError(f"unsupported depth encoding '{encoding}': use 16UC1 (millimetres) or 32FC1 (metres)")
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"a depth image must be [H, W], got shape {d.shape}")
    out = d.astype(np.float32) * np.float32(DEPTH_ENCODINGS[str(encoding).upper()])
    out[~np.isfinite(out) | (out <= 0)] = np.nan
    return out


def match_depth_size(depth_m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth [h, w] resized (nearest neighbour: depth is never interpolated across edges) to the colour image's
    (H, W). ValueError when the aspects differ (a crop or an unregistered depth image cannot be used)."""
    h, w = depth_m.shape
    H, W = size
    if (h, w) == (H, W):
        return depth_m
    if abs((w / h) / (W / H) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(f"depth image {w}x{h} does not have the colour image's aspect ({W}x{H}): is it registered "
                         "to the colour camera (e.g. a RealSense aligned_depth_to_color topic)?")
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return depth_m[rows[:, None], cols[None, :]]


T = TypeVar("T")


class StampedBuffer(Generic[T]):
    """The last `capacity` items of a stream (e.g. depth messages) by stamp (seconds), for pairing with another
    stream without waiting: `nearest(t, max_skew)` is the item whose stamp is closest to t, if within max_skew."""

    def __init__(self, capacity: int = 8) -> None:
        self._items: deque[tuple[float, T]] = deque(maxlen=max(1, int(capacity)))

    def put(self, stamp: float, item: T) -> None:
        self._items.append((float(stamp), item))

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def nearest(self, stamp: float, max_skew: float) -> Optional[tuple[float, T]]:
        """(stamp, item) closest to `stamp` with |difference| <= max_skew (ties: the newer), else None."""
        items = sorted(self._items, key=lambda it: it[0])  # arrival order is not always stamp order
        if not items or not math.isfinite(stamp):
            return None
        stamps = [s for s, _ in items]
        k = bisect.bisect_left(stamps, stamp)
        best = None
        for j in (k - 1, k):
            if 0 <= j < len(items):
                d = abs(stamps[j] - stamp)
                if d <= max_skew and (best is None or d <= best[0]):
                    best = (d, items[j])
        return None if best is None else best[1]


@dataclass
class DepthFrame:
    """A depth image paired with a colour frame: metres [H, W] at the colour resolution and its camera."""

    depth_m: np.ndarray        # float32 [H, W], NaN = no reading
    camera: Any                # PinholeCamera of the colour image
    stamp: Optional[float] = None  # the depth image's stamp (s)


__all__ = ["DEPTH_ENCODINGS", "depth_to_metres", "match_depth_size", "StampedBuffer", "DepthFrame"]
