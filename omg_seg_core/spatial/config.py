"""`DepthConfig`: how segments get their 3D answer (node parameters `depth.*`, docs/ros.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass
class DepthConfig:
    """Thresholds of the per-segment 3D estimate (spatial/boxes3d.py). Lengths in metres."""

    min_m: float = 0.1            # readings nearer than this are dropped (below a depth camera's minimum range)
    max_m: float = 10.0           # readings farther than this are dropped
    erode_px: int = 1             # mask erosion radius (px) before reading depth: edge pixels mix object and background
    min_points: int = 20          # fewer valid points -> QUALITY_FEW_POINTS, no position
    percentile: float = 0.5       # box extent from the [p, 100 - p] percentiles of the points (robust to stray pixels)
    outlier_mads: float = 4.0     # points farther than this many (scaled) MADs from the median depth are dropped
    outlier_min_m: float = 0.02   # ... but never closer than this to the median (flat objects have MAD ~ 0)
    complete: bool = True         # things: extend the box behind the visible surface (see boxes3d.py)
    oriented: bool = False        # things: an oriented box from PCA of the points instead of a camera-aligned one
    planes: int = 2               # fit a plane to this many of the largest stuff regions (0 = none)
    max_points: int = 4000        # per segment, larger regions are read on an even pixel grid of ~this many (speed)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise ValueError(f"depth.{f.name} must be a finite number, got {v!r}")
        if not 0.0 <= self.min_m < self.max_m:
            raise ValueError(f"depth.min_m must be >= 0 and < depth.max_m, got {self.min_m} and {self.max_m}")
        if not 0.0 <= self.percentile < 50.0:
            raise ValueError(f"depth.percentile must be in [0, 50), got {self.percentile}")
        for name in ("erode_px", "planes"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"depth.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("min_points", "max_points"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"depth.{name} must be >= 1, got {getattr(self, name)}")
        if self.outlier_mads <= 0 or self.outlier_min_m < 0:
            raise ValueError("depth.outlier_mads must be > 0 and depth.outlier_min_m >= 0")


__all__ = ["DepthConfig"]
