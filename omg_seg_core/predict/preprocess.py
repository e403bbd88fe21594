"""Image pre-processing (official OMG-Seg / mmdet test pipeline) and the coordinate maps between image spaces.

Three image spaces (all sizes (h, w), pixels, x right / y down):
- original  (ori_shape):  the RGB image given to `set_image`; every result is returned here.
- resized   (img_shape):  keep-ratio resize so the long side equals `long_side` (mmcv `imrescale` rounding);
                          prompt boxes are given to the model in this space.
- padded    (pad_shape):  resized image zero-padded bottom/right to a multiple of `pad_size_divisor`
                          (the network input; mask logits come at stride 4 of this).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import cv2
import numpy as np
import torch

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..model.prompt_encoder import points_to_boxes


@dataclass(frozen=True)
class ImageMeta:
    """Sizes of one pre-processed image: ori_shape (H0, W0), img_shape (h, w), pad_shape (Hp, Wp)."""

    ori_shape: tuple[int, int]
    img_shape: tuple[int, int]
    pad_shape: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """(w / W0, h / H0): multiply original x / y by these to get resized-image coordinates (mmdet scale_factor)."""
        return self.img_shape[1] / self.ori_shape[1], self.img_shape[0] / self.ori_shape[0]


def validate_image(image: object) -> np.ndarray:
    """Check an RGB uint8 image [H, W, 3]; raise TypeError/ValueError naming the offending dtype/shape."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (RGB uint8 [H, W, 3]), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape [H, W, 3] (RGB), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
    return image


def resized_shape(ori_shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Keep-ratio size (h, w) with the long side == long_side, rounded as mmcv `imrescale` (int(x * s + 0.5))."""
    if long_side < 1:
        raise ValueError(f"long_side must be >= 1, got {long_side}")
    h, w = ori_shape
    s = long_side / max(h, w)
    return max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5))


def padded_shape(img_shape: tuple[int, int], divisor: int) -> tuple[int, int]:
    if divisor < 1:
        raise ValueError(f"pad_size_divisor must be >= 1, got {divisor}")
    return tuple(int(-(-x // divisor) * divisor) for x in img_shape)  # type: ignore[return-value]


def preprocess(image: np.ndarray, long_side: int, pad_size_divisor: int = 32,
               device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32,
               ) -> tuple[torch.Tensor, ImageMeta]:
    """RGB uint8 [H0, W0, 3] -> (network input [1, 3, Hp, Wp], ImageMeta).

    Bilinear keep-ratio resize of the uint8 image (cv2 INTER_LINEAR, as mmcv), ImageNet mean/std in 0-255 RGB,
    then zeros padded bottom/right (mmdet pads after normalisation, so padding is 0 in normalised units).
    The normalisation runs in numpy on the CPU, per colour plane into the zero-padded input, as (x - mean) / std in
    float32 (the same floats as torch's ops, ~4x faster at 320x240); the result then moves to `device` / `dtype`.
    """
    image = validate_image(image)
    ori = (int(image.shape[0]), int(image.shape[1]))
    img_shape = resized_shape(ori, long_side)
    if img_shape != ori:
        image = cv2.resize(image, (img_shape[1], img_shape[0]), interpolation=cv2.INTER_LINEAR)
    pad = padded_shape(img_shape, pad_size_divisor)
    x = np.zeros((1, 3, *pad), np.float32)
    h, w = img_shape
    for c, plane in enumerate(cv2.split(np.ascontiguousarray(image))):
        v = x[0, c, :h, :w]
        np.subtract(plane, np.float32(IMAGENET_MEAN[c]), out=v, dtype=np.float32)
        np.divide(v, np.float32(IMAGENET_STD[c]), out=v)
    return torch.from_numpy(x).to(device=device, dtype=dtype), ImageMeta(ori, img_shape, pad)


def original_to_resized_xy(xy: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Scale [..., 2k] xy coordinates (points or xyxy boxes) from original to resized-image pixels."""
    sx, sy = meta.scale_xy
    out = np.asarray(xy, np.float64).copy()
    out[..., 0::2] *= sx
    out[..., 1::2] *= sy
    return out.astype(np.float32)



def point_prompt_boxes(xy: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Point prompts [P, 2] xy in original pixels -> the official pseudo boxes [P, 4] xyxy, (x-3, y-3, x+3, y+3)
    around each point's RESIZED-image position (the space the prompt encoder takes boxes in)."""
    resized = original_to_resized_xy(np.asarray(xy, np.float32).reshape(-1, 2), meta)
    return points_to_boxes(torch.from_numpy(resized)).numpy()


def _prompt_array(x: Any, name: str, cols: int) -> np.ndarray:
    """[N, cols] float64 from None, [N, cols], one flat row, or a flat list of N * cols values (ROS requests)."""
    if x is None:
        return np.zeros((0, cols), np.float64)
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric [N, {cols}], got {x!r:.100}") from e
    if a.size == 0:
        return np.zeros((0, cols), np.float64)
    if a.ndim == 1 and a.shape[0] % cols == 0:
        a = a.reshape(-1, cols)
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{name} must have shape [N, {cols}] (or a flat list of a multiple of {cols} values), "
                         f"got shape {a.shape}")
    bad = ~np.isfinite(a).all(1)
    if bad.any():
        raise ValueError(f"{name} contain NaN or infinite (non-finite) values: {a[bad].tolist()[:4]}")
    return a


def validate_prompts(points: Any, point_labels: Any, boxes: Any, image_size: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """THE check of point/box prompts (the predictor and every service request go through it).

    Coordinates are ORIGINAL-image pixels of an image of `image_size` (H, W), continuous: pixel (i, j) covers
    x in [j, j + 1), y in [i, i + 1).
    points: [P, 2] xy (or one point / a flat list of 2P values); a point must lie on a pixel: 0 <= x < W and
        0 <= y < H (x == W is outside).
    point_labels: [P] of 1 (positive / foreground) or 0 (negative / background); None or empty = all positive.
    boxes: [B, 4] xyxy (or one box / a flat list of 4B values) with x1 < x2 and y1 < y2, x2/y2 exclusive like
        `Segments.boxes`; a box reaching past the image border is CLIPPED to [0, W] x [0, H]; a box that does
        not overlap the image is refused.
    Returns (points float32 [P, 2], labels int64 [P], boxes float32 [B, 4]). Raises ValueError naming
    the offending prompt: non-numeric, wrong shape, NaN/inf, outside the image, empty or inverted box, labels not
    0/1 or of another length, no prompt at all.
    """
    h, w = image_size
    pts = _prompt_array(points, "points", 2)
    bxs = _prompt_array(boxes, "boxes", 4)
    if len(pts) == 0 and len(bxs) == 0:
        raise ValueError("no prompt: give at least one point or one box, got none")
    lab = np.asarray([] if point_labels is None else point_labels).reshape(-1)
    if lab.size == 0:
        labels = np.ones(len(pts), np.int64)
    elif len(pts) == 0:
        raise ValueError(f"point_labels given ({lab.size}) but no points")
    elif lab.shape[0] != len(pts):
        raise ValueError(f"point_labels has {lab.shape[0]} values for {len(pts)} points")
    elif not np.isin(lab, (0, 1)).all():
        raise ValueError(f"point_labels must be 1 (foreground) or 0 (background), got "
                         f"{sorted(set(lab[~np.isin(lab, (0, 1))].tolist()))}")
    else:
        labels = lab.astype(np.int64)
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"point {i} ({pts[i, 0]:g}, {pts[i, 1]:g}) is outside the {w}x{h} image "
                         f"(0 <= x < {w}, 0 <= y < {h})")
    bad = (bxs[:, 2] <= bxs[:, 0]) | (bxs[:, 3] <= bxs[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"box {i} {bxs[i].tolist()} is empty or inverted (need x1 < x2, y1 < y2)")
    off = (bxs[:, 2] <= 0) | (bxs[:, 3] <= 0) | (bxs[:, 0] >= w) | (bxs[:, 1] >= h)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"box {i} {bxs[i].tolist()} lies outside the {w}x{h} image")
    bxs = bxs.copy()
    bxs[:, [0, 2]] = bxs[:, [0, 2]].clip(0, w)
    bxs[:, [1, 3]] = bxs[:, [1, 3]].clip(0, h)
    return pts.astype(np.float32), labels, bxs.astype(np.float32)


__all__ = ["ImageMeta", "validate_image", "validate_prompts", "resized_shape", "padded_shape", "preprocess",
           "original_to_resized_xy", "point_prompt_boxes"]
