"""`PinholeCamera`: the colour camera's intrinsics, and back-projection of depth pixels to metres.

Conventions (REP 103 optical frame, as sensor_msgs/CameraInfo): x right, y down, z forward, metres. Pixel (u, v) is
column u, row v, and integer coordinates are pixel CENTRES (so the principal point of a W x H image with an ideal
centred lens is ((W - 1) / 2, (H - 1) / 2)). Depth is the z coordinate (not the ray length), as depth cameras and
REP 118 define it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of an undistorted (rectified or distortion-free) image of `width` x `height` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(float(v)) for v in vals):
            raise ValueError(f"camera intrinsics must be finite, got fx={self.fx} fy={self.fy} cx={self.cx} "
                             f"cy={self.cy}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera focal lengths must be > 0, got fx={self.fx} fy={self.fy} (an all-zero K: "
                             "the camera is not calibrated)")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera image size must be > 0, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, matrix: Sequence[float], width: int, height: int) -> "PinholeCamera":
        """From a row-major 3x3 K (9 values) or 3x4 P (12 values), as in sensor_msgs/CameraInfo."""
        m = np.asarray(matrix, np.float64).reshape(-1)
        if m.size not in (9, 12):
            raise ValueError(f"camera matrix needs 9 (K) or 12 (P) values, got {m.size}")
        m = m.reshape(3, -1)
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), int(width), int(height))

    @classmethod
    def from_fov(cls, fov_y_deg: float, width: int, height: int) -> "PinholeCamera":
        """Square pixels, principal point at the image centre, vertical field of view `fov_y_deg` (OpenGL-style
        perspective cameras, e.g. the synthetic renderer)."""
        f = (height / 2.0) / math.tan(math.radians(fov_y_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    def scaled_to(self, width: int, height: int) -> "PinholeCamera":
        """The same camera for an image resized to `width` x `height` (pixel centres kept: c' = (c + 0.5) s - 0.5)."""
        if (int(width), int(height)) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                             int(width), int(height))

    def back_project(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels (u, v) [K] with depth z [K] metres -> points float32 [K, 3] in the optical frame."""
        z = np.asarray(z, np.float32)
        x = (np.asarray(u, np.float32) - np.float32(self.cx)) * z / np.float32(self.fx)
        y = (np.asarray(v, np.float32) - np.float32(self.cy)) * z / np.float32(self.fy)
        return np.stack([x, y, z], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Points [K, 3] in the optical frame (z > 0) -> pixels float64 [K, 2] (u, v); NaN where z <= 0."""
        p = np.asarray(points, np.float64).reshape(-1, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(p[:, 2] > 0, p[:, 2], np.nan)
            return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], axis=-1)


__all__ = ["PinholeCamera"]
