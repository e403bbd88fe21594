"""Prompt queries from points and boxes, encoded exactly as the official `prepare_for_dn_mo` (eval, no noise).

Coordinates: boxes are xyxy in RESIZED-image pixels (the image after the keep-ratio resize, before padding);
`image_size` = (h, w) of that resized image — the official code divides by img_shape, not the padded size.
A point (x, y) becomes the box (x-3, y-3, x+3, y+3) (`OVSAMDataPreprocessor(use_point_pseudo_box=True)`).

Per prompt: box / (w, h, w, h) -> cxcywh -> inverse_sigmoid(eps=1e-5) -> sigmoid -> sine encoding (y, x, w, h,
128 each) -> `pos_linear` = query position; query feature = pb_embedding[0] + mask_tokens[0] (the official code
always uses bp = 0). Prompts attend only to themselves in self-attention.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

POINT_BOX_HALF_SIZE = 3.0

ImageSize = Union[Sequence[int], torch.Tensor]


def points_to_boxes(points: torch.Tensor, half_size: float = POINT_BOX_HALF_SIZE) -> torch.Tensor:
    """points [..., 2] (x, y) -> pseudo boxes [..., 4] xyxy = (x-3, y-3, x+3, y+3)."""
    if points.shape[-1] != 2:
        raise ValueError(f"points must be [..., 2] (x, y), got shape {tuple(points.shape)}")
    p = points.float()
    return torch.cat([p - half_size, p + half_size], dim=-1)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """mmdet inverse_sigmoid: log(x / (1 - x)) with both terms clamped to >= eps after clamping x to [0, 1]."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _size_factor(image_size: ImageSize, like: torch.Tensor) -> torch.Tensor:
    """(h, w) or [B, 2] tensor -> factor [B or 1, 1, 4] = (w, h, w, h), float32."""
    if isinstance(image_size, torch.Tensor):
        hw = image_size.to(device=like.device, dtype=torch.float32).reshape(-1, 2)
    else:
        if len(image_size) != 2 or min(int(v) for v in image_size) <= 0:
            raise ValueError(f"image_size must be (h, w) with positive ints, got {image_size!r}")
        hw = torch.tensor([[float(image_size[0]), float(image_size[1])]], dtype=torch.float32, device=like.device)
    return torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], dim=-1)[:, None, :]


def boxes_to_bbox_logit(boxes: torch.Tensor, image_size: ImageSize) -> torch.Tensor:
    """boxes [B, P, 4] (or [P, 4]) xyxy resized-image px -> inverse_sigmoid(normalised cxcywh) float32 [B, P, 4]."""
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [..., 4] xyxy, got shape {tuple(boxes.shape)}")
    if boxes.dim() == 2:
        boxes = boxes[None]
    b = boxes.float() / _size_factor(image_size, boxes)
    x1, y1, x2, y2 = b.split((1, 1, 1, 1), dim=-1)
    cxcywh = torch.cat([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1), (y2 - y1)], dim=-1)
    return inverse_sigmoid(cxcywh)


def prompt_self_attn_blocked(num_prompts: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """bool [P, P], True = blocked: every prompt query sees only itself in self-attention."""
    idx = torch.arange(num_prompts, device=device)
    return idx[:, None] != idx[None, :]  # not torch.eye(bool): ONNX EyeLike has no bool kernel in ORT


__all__ = ["points_to_boxes", "inverse_sigmoid", "boxes_to_bbox_logit", "prompt_self_attn_blocked",
           "POINT_BOX_HALF_SIZE"]
