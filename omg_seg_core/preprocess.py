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
from typing import Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .config import IMAGENET_MEAN, IMAGENET_STD


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


__all__ = ["ImageMeta", "validate_image", "resized_shape", "padded_shape", "preprocess", "original_to_resized_xy"]
