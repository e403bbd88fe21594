"""Sine position encodings, written to reproduce mmdet 3.1.0 bit for bit (same float32 op order).

All encodings are computed in float32 from Python-int sizes (constants when traced for ONNX) and cast by the
caller. Layouts follow the official code:

- 2D (pixel decoder, `SinePositionalEncoding(num_feats, normalize=True)`): [D = 2*num_feats, h, w] laid out as
  cat(pos_y, pos_x); inside each half sin/cos are interleaved (sin f0, cos f0, sin f1, cos f1, ...).
- 3D (transformer decoder, `SinePositionalEncoding3D`): cat(pos_y, pos_x) + pos_z. For a single image (T = 1)
  pos_z is NOT zero: z is normalised to 2*pi and encoded over 2*num_feats frequencies.
- `coordinate_to_encoding` (prompt boxes): [..., 4] cxcywh in [0, 1] -> [..., 4*num_feats] in order y, x, w, h.
"""
from __future__ import annotations

import math

import torch

_TEMPERATURE = 10000
_SCALE = 2 * math.pi
_EPS = 1e-6


def _dim_t(num_feats: int, device: torch.device) -> torch.Tensor:
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    return _TEMPERATURE ** (2 * (dim_t // 2) / num_feats)


def _interleave(pos: torch.Tensor) -> torch.Tensor:
    """[..., F] angles -> [..., F] as (sin a0, cos a1, sin a2, cos a3, ...) exactly like mmdet's stack/view."""
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


def _normalised_axis(n: int, device: torch.device) -> torch.Tensor:
    # cumsum of ones over an unpadded mask = 1..n, then (x + 0) / (x_last + eps) * 2pi as mmdet does.
    x = torch.arange(1, n + 1, dtype=torch.float32, device=device)
    return (x + 0.0) / (x[-1:] + _EPS) * _SCALE


def sine_encoding_2d(h: int, w: int, num_feats: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Normalised 2D sine encoding of an unpadded h x w map -> float32 [2*num_feats, h, w] (cat(pos_y, pos_x))."""
    device = torch.device(device)
    dim_t = _dim_t(num_feats, device)
    pos_y = _interleave(_normalised_axis(h, device)[:, None] / dim_t)  # [h, F]
    pos_x = _interleave(_normalised_axis(w, device)[:, None] / dim_t)  # [w, F]
    pos_y = pos_y[:, None, :].expand(h, w, num_feats)
    pos_x = pos_x[None, :, :].expand(h, w, num_feats)
    return torch.cat((pos_y, pos_x), dim=-1).permute(2, 0, 1).contiguous()


def sine_encoding_3d(h: int, w: int, num_feats: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """SinePositionalEncoding3D of one frame (T = 1) -> float32 [2*num_feats, h, w] = cat(pos_y, pos_x) + pos_z."""
    device = torch.device(device)
    pos_yx = sine_encoding_2d(h, w, num_feats, device)
    dim_t_z = _dim_t(num_feats * 2, device)
    z = _normalised_axis(1, device)  # [1]: 1 / (1 + 1e-6) * 2pi, non-zero
    pos_z = _interleave(z[:, None] / dim_t_z)[0]  # [2F]
    return pos_yx + pos_z[:, None, None]


def coordinate_to_encoding(coords: torch.Tensor, num_feats: int = 128) -> torch.Tensor:
    """mmdet `coordinate_to_encoding` for boxes: coords [..., 4] (cx, cy, w, h in [0, 1]) -> [..., 4*num_feats]
    in the order (y, x, w, h), computed in float32."""
    if coords.shape[-1] != 4:
        raise ValueError(f"coordinate_to_encoding expects [..., 4] cxcywh, got shape {tuple(coords.shape)}")
    coords = coords.float()
    dim_t = _dim_t(num_feats, coords.device)
    parts = [_interleave((coords[..., i] * _SCALE)[..., None] / dim_t) for i in range(4)]
    return torch.cat((parts[1], parts[0], parts[2], parts[3]), dim=-1)


__all__ = ["sine_encoding_2d", "sine_encoding_3d", "coordinate_to_encoding"]
