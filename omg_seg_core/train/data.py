"""Training samples, scale/crop augmentation, ground-truth prompts and batching.

A `Sample` is one image with its panoptic ground truth in the project's conventions (class ids index the
vocabulary, things first; instance ids are stable across the frames of one video). Sources (`sources.py`) turn
generated scenes or COCO-panoptic files into Samples; this module makes fixed-size training batches of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..model.prompt_encoder import points_to_boxes
from ..structures import mask_extent


@dataclass
class Sample:
    """image uint8 [H, W, 3] RGB; masks bool [M, H, W] (non-overlapping); labels int64 [M]; is_thing bool [M];
    instance_ids int64 [M] (>= 1, unique per image, stable within a video); phrases: M referring phrases
    ("" when the segment has none, e.g. stuff). `origin` names the file/seed for error messages."""

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    is_thing: np.ndarray
    instance_ids: np.ndarray
    phrases: list[str]
    origin: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = len(self.labels)
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"{self.origin}: image must be uint8 [H, W, 3], got {self.image.dtype} {self.image.shape}")
        if self.masks.shape != (m, *self.image.shape[:2]):
            raise ValueError(f"{self.origin}: masks shape {self.masks.shape} != ({m}, H, W) for image "
                             f"{self.image.shape[:2]}")
        if not (len(self.is_thing) == len(self.instance_ids) == len(self.phrases) == m):
            raise ValueError(f"{self.origin}: labels/is_thing/instance_ids/phrases lengths differ")


def random_scale_crop(s: Sample, out_wh: tuple[int, int], scale_range: tuple[float, float],
                      rng: np.random.Generator, min_pixels: int = 4) -> Sample:
    """Resize by a random factor in `scale_range` (relative to the ORIGINAL size), then take a random `out_wh`
    (W, H) crop, zero-padded where the resized image is smaller. Segments with fewer than `min_pixels` pixels left
    are dropped. Training crops smaller than the inference image keep object sizes close to inference (factor
    near 1) while costing a fraction of the compute; smaller factors add scale variety."""
    w_out, h_out = out_wh
    h, w = s.image.shape[:2]
    f = float(rng.uniform(*scale_range))
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    img = F.interpolate(torch.from_numpy(s.image).permute(2, 0, 1)[None].float(), size=(nh, nw), mode="bilinear",
                        align_corners=False, antialias=f < 1)[0]
    msk = F.interpolate(torch.from_numpy(s.masks).float()[None], size=(nh, nw), mode="nearest")[0] > 0.5 \
        if len(s.labels) else torch.zeros(0, nh, nw, dtype=torch.bool)
    y0 = int(rng.integers(0, max(nh - h_out, 0) + 1))
    x0 = int(rng.integers(0, max(nw - w_out, 0) + 1))
    img_c = torch.zeros(3, h_out, w_out)
    msk_c = torch.zeros(len(s.labels), h_out, w_out, dtype=torch.bool)
    ch, cw = min(h_out, nh - y0), min(w_out, nw - x0)
    img_c[:, :ch, :cw] = img[:, y0:y0 + ch, x0:x0 + cw]
    msk_c[:, :ch, :cw] = msk[:, y0:y0 + ch, x0:x0 + cw]
    keep = (msk_c.flatten(1).sum(1) >= min_pixels).numpy()
    return Sample(img_c.round().clamp(0, 255).byte().permute(1, 2, 0).numpy(), msk_c.numpy()[keep],
                  s.labels[keep], s.is_thing[keep], s.instance_ids[keep],
                  [p for p, k in zip(s.phrases, keep) if k], s.origin, dict(s.extra, valid_hw=(ch, cw)))


def click_point(mask: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """An interior click (x, y) float32 on `mask` [H, W]: with rng, a random pixel among the deeper half
    (distance to the border >= half the maximum); without rng, the deepest pixel (evaluation's click)."""
    dt = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    if rng is None:
        y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    else:
        ys, xs = np.nonzero(dt >= 0.5 * dt.max())
        i = int(rng.integers(len(ys)))
        y, x = ys[i], xs[i]
    return np.array([x + 0.5, y + 0.5], np.float32)


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight xyxy box (x2/y2 exclusive) float32 [4] of a non-empty bool mask (structures.mask_extent)."""
    box = mask_extent(mask)
    if box is None:
        raise ValueError("mask_box: the mask is empty")
    return np.array(box, np.float32)


def sample_prompts(s: Sample, n: int, click_fraction: float, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """n prompts from ground truth -> (boxes float32 [n, 4] xyxy in image px, target index int64 [n]).

    Things are preferred (3:1 weight) because users click objects; a click becomes the official 6-px pseudo box;
    boxes get +-10 % jitter of their size. With no segments, returns empty arrays.
    """
    m = len(s.labels)
    if m == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    wts = np.where(s.is_thing, 3.0, 1.0)
    idx = rng.choice(m, size=n, replace=m < n, p=wts / wts.sum())
    boxes = np.zeros((n, 4), np.float32)
    for k, t in enumerate(idx):
        if rng.random() < click_fraction:
            boxes[k] = points_to_boxes(torch.from_numpy(click_point(s.masks[t], rng))).numpy()
        else:
            b = mask_box(s.masks[t])
            wh = np.array([b[2] - b[0], b[3] - b[1]] * 2, np.float32)
            boxes[k] = b + rng.uniform(-0.1, 0.1, 4).astype(np.float32) * wh
    return boxes, idx.astype(np.int64)


def normalise_images(images: Sequence[np.ndarray], pad_to: int = 32) -> torch.Tensor:
    """uint8 [H, W, 3] images (same size) -> float [B, 3, Hp, Wp] ImageNet-normalised, zero-padded to pad_to."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    h, w = x.shape[-2:]
    hp, wp = -(-h // pad_to) * pad_to, -(-w // pad_to) * pad_to
    return F.pad(x, (0, wp - w, 0, hp - h))


@dataclass
class Batch:
    """images [B, 3, Hp, Wp]; per image: masks [M, Hp, Wp] float, labels [M], instance_ids [M], phrases;
    prompt_boxes [B, P, 4] (resized-image px), prompt_target [B, P] (index into that image's targets);
    pairs: list of (i, j) batch indices that are two frames of one video; image_size (h, w) unpadded."""

    images: torch.Tensor
    masks: list[torch.Tensor]
    labels: list[torch.Tensor]
    instance_ids: list[torch.Tensor]
    phrases: list[list[str]]
    prompt_boxes: torch.Tensor
    prompt_target: torch.Tensor
    pairs: list[tuple[int, int]]
    image_size: tuple[int, int]


def collate(samples: Sequence[Sample], pairs: list[tuple[int, int]], prompts_per_image: int,
            click_fraction: float, rng: np.random.Generator, pad_to: int = 32) -> Batch:
    """Samples of equal size -> Batch. Images with no segments get P dummy prompts with target -1 (ignored)."""
    images = normalise_images([s.image for s in samples], pad_to)
    hp, wp = images.shape[-2:]
    h, w = samples[0].image.shape[:2]
    masks, labels, ids, boxes, tgt = [], [], [], [], []
    for s in samples:
        m = torch.from_numpy(s.masks).float()
        masks.append(F.pad(m, (0, wp - w, 0, hp - h)))
        labels.append(torch.from_numpy(s.labels.astype(np.int64)))
        ids.append(torch.from_numpy(s.instance_ids.astype(np.int64)))
        b, t = sample_prompts(s, prompts_per_image, click_fraction, rng)
        if len(t) == 0:
            b = np.tile(np.array([[0, 0, w, h]], np.float32), (prompts_per_image, 1))
            t = np.full(prompts_per_image, -1, np.int64)
        boxes.append(torch.from_numpy(b))
        tgt.append(torch.from_numpy(t))
    return Batch(images, masks, labels, ids, [list(s.phrases) for s in samples], torch.stack(boxes),
                 torch.stack(tgt), list(pairs), (h, w))


__all__ = ["Sample", "Batch", "collate", "random_scale_crop", "sample_prompts", "click_point", "mask_box",
           "normalise_images"]
