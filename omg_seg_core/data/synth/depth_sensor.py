"""Ground-truth 3D of a rendered scene and a depth-sensor model, so 3D numbers are not only from perfect depth.

- `object_boxes_3d(scene, size)`: each object's axis-aligned 3D box in the camera optical frame (REP 103: x right,
  y down, z forward, metres) from its mesh vertices: centre and extent, i.e. the WHOLE object, hidden side
  included.
- `sensor_depth(depth, rgb, rng, noise)`: what an active-stereo / structured-light camera (RealSense class) would
  return for the clean depth: Gaussian noise with sigma = `sigma_z2 * z^2` (stereo error grows with z squared),
  missing readings along depth edges (occlusion shadows), on dark and on saturated (shiny) pixels and as random
  speckle, and millimetre quantisation (16UC1). All defaults are documented in docs/synthetic_data.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...spatial.camera import PinholeCamera
from .meshes import shape_mesh
from .scene import Scene


def scene_camera(scene: Scene, width: int, height: int) -> PinholeCamera:
    """The renderer's intrinsics for a `width` x `height` image (square pixels, centred principal point)."""
    return PinholeCamera.from_fov(scene.camera.fov_y, width, height)


def world_to_optical(scene: Scene) -> np.ndarray:
    """float64 [4, 4]: world -> camera optical frame (OpenGL eye frame has y up, z backwards: flip both)."""
    return np.diag([1.0, -1.0, -1.0, 1.0]) @ scene.camera.view_matrix()


def object_boxes_3d(scene: Scene) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """uid -> (centre float64 [3], size float64 [3]) of each object's axis-aligned box in the optical frame."""
    to_cam = world_to_optical(scene)
    out = {}
    for ob in scene.objects:
        v = shape_mesh(ob.shape)[0][:, :3].astype(np.float64)
        p = (to_cam @ ob.model_matrix() @ np.c_[v, np.ones(len(v))].T)[:3].T
        lo, hi = p.min(0), p.max(0)
        out[ob.uid] = ((lo + hi) / 2.0, hi - lo)
    return out


@dataclass(frozen=True)
class DepthNoise:
    """Parameters of `sensor_depth` (defaults: a RealSense-D435-like camera at 0.3-2 m)."""

    sigma_z2: float = 0.002        # noise sigma = sigma_z2 * z^2 metres (2 mm at 1 m, 4.5 mm at 1.5 m)
    edge_jump_m: float = 0.03      # neighbouring depths differing by more than this form an edge ...
    edge_drop: float = 0.6         # ... whose pixels (dilated by 1 px) read nothing with this probability
    dark_luma: float = 25.0        # pixels darker than this (0-255 luma) ...
    dark_drop: float = 0.5         # ... read nothing with this probability
    bright_luma: float = 250.0     # saturated (specular) pixels ...
    bright_drop: float = 0.7       # ... read nothing with this probability
    speckle: float = 0.01          # any pixel reads nothing with this probability
    quantum_m: float = 0.001       # readings are rounded to this (16UC1 millimetres)


def sensor_depth(depth: np.ndarray, rgb: np.ndarray, rng: np.random.Generator,
                 noise: DepthNoise = DepthNoise()) -> np.ndarray:
    """Noisy depth float32 [H, W] metres (NaN = no reading) from clean depth [H, W] and the frame's rgb."""
    z = depth.astype(np.float64)
    h, w = z.shape
    out = z + rng.standard_normal((h, w)) * noise.sigma_z2 * np.nan_to_num(z) ** 2
    zf = np.nan_to_num(z, nan=1e3)
    edge = np.zeros((h, w), bool)
    jx = np.abs(np.diff(zf, axis=1)) > noise.edge_jump_m
    jy = np.abs(np.diff(zf, axis=0)) > noise.edge_jump_m
    edge[:, 1:] |= jx
    edge[:, :-1] |= jx
    edge[1:] |= jy
    edge[:-1] |= jy
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    u = rng.random((h, w))
    drop = ((edge & (u < noise.edge_drop)) | ((luma < noise.dark_luma) & (u < noise.dark_drop))
            | ((luma > noise.bright_luma) & (u < noise.bright_drop)) | (rng.random((h, w)) < noise.speckle))
    out[drop] = np.nan
    if noise.quantum_m > 0:
        out = np.round(out / noise.quantum_m) * noise.quantum_m
    return out.astype(np.float32)


__all__ = ["scene_camera", "world_to_optical", "object_boxes_3d", "DepthNoise", "sensor_depth"]
