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
import torch.nn.functional as F

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
    """
    image = validate_image(image)
    ori = (int(image.shape[0]), int(image.shape[1]))
    img_shape = resized_shape(ori, long_side)
    if img_shape != ori:
        image = cv2.resize(image, (img_shape[1], img_shape[0]), interpolation=cv2.INTER_LINEAR)
    pad = padded_shape(img_shape, pad_size_divisor)
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    x = (x - mean) / std
    x = F.pad(x, (0, pad[1] - img_shape[1], 0, pad[0] - img_shape[0]), value=0.0)
    return x[None].to(dtype).contiguous(), ImageMeta(ori, img_shape, pad)


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
    if x is None:
        return np.zeros((0, cols), np.float32)
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric [N, {cols}], got {x!r:.100}") from e
    if a.size == 0:
        return np.zeros((0, cols), np.float32)
    if a.ndim == 1 and a.shape[0] == cols:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f"{name} must have shape [N, {cols}], got {a.shape}")
    bad = ~np.isfinite(a).all(1)
    if bad.any():
        raise ValueError(f"{name} contain non-finite values: {a[bad].tolist()}")
    return a


def validate_prompts(points: Any, point_labels: Any, boxes: Any, ori_shape: tuple[int, int]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check prompts given in ORIGINAL-image pixels (image size `ori_shape` (H0, W0)): points [P, 2] xy,
    point_labels [P] (1 positive, 0 negative; None = all positive), boxes [B, 4] xyxy; a single point or box may
    be given flat. Returns (points float [P, 2], labels int64 [P], boxes float [B, 4]); raises ValueError naming
    the offending prompt (non-numeric, wrong shape, non-finite, outside the image, empty box)."""
    h, w = ori_shape
    pts = _prompt_array(points, "points", 2)
    if point_labels is None:
        labels = np.ones(len(pts), np.int64)
    else:
        lab = np.asarray(point_labels).reshape(-1)
        if lab.shape[0] != len(pts):
            raise ValueError(f"point_labels has {lab.shape[0]} entries for {len(pts)} points")
        if not np.isin(lab, (0, 1)).all():
            raise ValueError(f"point_labels must be 1 (positive) or 0 (negative), got {lab[~np.isin(lab, (0, 1))].tolist()}")
        labels = lab.astype(np.int64)
    outside = (pts[:, 0] < 0) | (pts[:, 0] > w) | (pts[:, 1] < 0) | (pts[:, 1] > h)
    if outside.any():
        raise ValueError(f"points outside the {w}x{h} image: {pts[outside].tolist()}")
    bxs = _prompt_array(boxes, "boxes", 4)
    bad = ((bxs[:, 0] < 0) | (bxs[:, 1] < 0) | (bxs[:, 2] > w) | (bxs[:, 3] > h)
           | (bxs[:, 2] <= bxs[:, 0]) | (bxs[:, 3] <= bxs[:, 1]))
    if bad.any():
        raise ValueError(f"boxes must be xyxy with x1 < x2, y1 < y2 inside the {w}x{h} image, got {bxs[bad].tolist()}")
    return pts, labels, bxs


__all__ = ["ImageMeta", "validate_image", "validate_prompts", "resized_shape", "padded_shape", "preprocess",
           "original_to_resized_xy", "point_prompt_boxes"]
