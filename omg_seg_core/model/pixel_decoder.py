"""MSDeformAttnPixelDecoder (mmdet 3.1.0) in pure PyTorch.

Input: backbone features [f4, f8, f16, f32], each [B, C_i, H/s, W/s]. The `num_levels` coarsest (3: strides 32,
16, 8; in that order, `input_convs[0]` takes stride 32) are projected to D channels (1x1 conv + GroupNorm),
flattened into one sequence and refined by `num_encoder_layers` post-norm deformable encoder layers. FPN steps
down to stride 4 (lateral 1x1 + GN, bilinear upsampling of the next coarser map, 3x3 conv + GN + ReLU;
`lateral_convs[0]` takes the map just finer than the finest encoder level) and a 1x1 `mask_feature` conv on the
stride-4 map give the mask features. With `num_levels=2` (mmdet's num_encoder_levels) stride 8 comes from the FPN
too: the encoder sees about 4x fewer positions (400 of 1680 at 320x240).

Output: mask_features [B, D, H/4, W/4] and memory [s32, s16, s8][:num_outs], each [B, D, H/s, W/s].
Module names follow mmdet so official keys map with the prefix `panoptic_head.pixel_decoder.` -> `pixel_decoder.`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .ms_deform_attn import MSDeformAttn
from .position_encoding import sine_encoding_2d


class ConvGN(nn.Module):
    """mmcv ConvModule(conv -> GroupNorm [-> ReLU]); keys `conv.*`, `gn.*`."""

    def __init__(self, cin: int, cout: int, kernel_size: int, bias: bool, groups: int, relu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias)
        self.gn = nn.GroupNorm(groups, cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gn(self.conv(x))
        return F.relu(x) if self.relu else x


class FFN(nn.Module):
    """mmcv FFN with identity: x + Linear(act(Linear(x))); keys `layers.0.0.*`, `layers.1.*`."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU()), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention -> LN -> FFN -> LN (keys self_attn, ffn, norms.0/1)."""

    def __init__(self, dim: int, heads: int, levels: int, points: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(dim, heads, levels, points)
        self.ffn = FFN(dim, ffn_dim)
        self.norms = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])

    def forward(self, x: torch.Tensor, pos: torch.Tensor, ref: torch.Tensor,
                shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        x = self.norms[0](self.self_attn(x, x, pos, ref, shapes))
        return self.norms[1](self.ffn(x))


class DeformableEncoder(nn.Module):
    def __init__(self, num_layers: int, dim: int, heads: int, levels: int, points: int, ffn_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [DeformableEncoderLayer(dim, heads, levels, points, ffn_dim) for _ in range(num_layers)])

    def forward(self, x: torch.Tensor, pos: torch.Tensor, ref: torch.Tensor,
                shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pos, ref, shapes)
        return x


def reference_points(shapes: Sequence[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """Pixel centres of every level normalised to [0, 1]: float32 [sum(h*w), 2] as (x, y), row-major per level.
    Same values as mmdet's MlvlPointGenerator((x + 0.5) * s) / (w * s)."""
    refs = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / float(h)
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / float(w)
        refs.append(torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], -1).reshape(-1, 2))
    return torch.cat(refs, 0)


class MSDeformAttnPixelDecoder(nn.Module):
    """forward(feats [f4, f8, f16, f32]) -> (mask_features [B, D, H/4, W/4], [m32, m16, m8] each [B, D, h, w])."""

    def __init__(self, in_channels: Sequence[int], dim: int = 256, num_layers: int = 6, heads: int = 8,
                 points: int = 4, ffn_dim: int = 1024, num_levels: int = 3, num_outs: int = 3,
                 gn_groups: int = 32) -> None:
        super().__init__()
        if len(in_channels) != 4 or not 1 <= num_levels <= num_outs <= 3:
            raise ValueError(f"pixel decoder expects 4 input levels and 1 <= num_levels (encoder levels) <= "
                             f"num_outs (memory levels) <= 3, got {list(in_channels)}, num_levels={num_levels}, "
                             f"num_outs={num_outs}")
        self.dim, self.num_levels, self.num_outs = dim, num_levels, num_outs
        n_in = len(in_channels)
        # from low to high resolution: input_convs[0] takes the stride-32 map
        self.input_convs = nn.ModuleList(
            [ConvGN(in_channels[i], dim, 1, True, gn_groups) for i in range(n_in - 1, n_in - num_levels - 1, -1)])
        self.encoder = DeformableEncoder(num_layers, dim, heads, num_levels, points, ffn_dim)
        self.level_encoding = nn.Embedding(num_levels, dim)
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for i in range(n_in - num_levels - 1, -1, -1):
            self.lateral_convs.append(ConvGN(in_channels[i], dim, 1, False, gn_groups))
            self.output_convs.append(ConvGN(dim, dim, 3, False, gn_groups, relu=True))
        self.mask_feature = nn.Conv2d(dim, dim, 1)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """mmdet's init (xavier convs, normal level encoding); only matters when training from scratch."""
        for m in list(self.input_convs) + list(self.lateral_convs) + list(self.output_convs):
            nn.init.xavier_uniform_(m.conv.weight)
            if m.conv.bias is not None:
                nn.init.zeros_(m.conv.bias)
        nn.init.xavier_uniform_(self.mask_feature.weight)
        nn.init.zeros_(self.mask_feature.bias)
        nn.init.normal_(self.level_encoding.weight)
        for layer in self.encoder.layers:
            for lin in (layer.ffn.layers[0][0], layer.ffn.layers[1]):
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if len(feats) != 4:
            raise ValueError(f"pixel decoder expects 4 feature maps [f4, f8, f16, f32], got {len(feats)}")
        bs = feats[0].shape[0]
        n_in = len(feats)
        srcs, poss, shapes = [], [], []
        for i in range(self.num_levels):
            feat = feats[n_in - 1 - i]
            h, w = int(feat.shape[-2]), int(feat.shape[-1])
            proj = self.input_convs[i](feat)
            pos = sine_encoding_2d(h, w, self.dim // 2, feat.device).to(proj.dtype)
            pos = self.level_encoding.weight[i].view(-1, 1, 1) + pos
            srcs.append(proj.flatten(2).permute(0, 2, 1))
            poss.append(pos.flatten(1).permute(1, 0)[None].expand(bs, -1, -1))
            shapes.append((h, w))
        src = torch.cat(srcs, 1)
        pos = torch.cat(poss, 1)
        ref = reference_points(shapes, src.device)[None, :, None, :].expand(bs, -1, self.num_levels, 2)
        memory = self.encoder(src, pos, ref, shapes).permute(0, 2, 1)
        outs = [m.reshape(bs, self.dim, h, w) for m, (h, w) in
                zip(memory.split([h * w for h, w in shapes], dim=-1), shapes)]
        for j, i in enumerate(range(n_in - self.num_levels - 1, -1, -1)):
            cur = self.lateral_convs[j](feats[i])
            y = cur + F.interpolate(outs[-1], size=cur.shape[-2:], mode="bilinear", align_corners=False)
            outs.append(self.output_convs[j](y))
        return self.mask_feature(outs[-1]), outs[: self.num_outs]


def _is_sampling_rows(parts: Sequence[str]) -> bool:
    """Whether a pixel-decoder key (split at dots) is an encoder layer's sampling_offsets / attention_weights."""
    return len(parts) > 2 and parts[0] == "encoder" and parts[-2] in ("sampling_offsets", "attention_weights")


def _sampling_rows(t: torch.Tensor, layer: str, heads: int, levels: int, points: int) -> torch.Tensor:
    """The weight or bias of MSDeformAttn's `layer` ("sampling_offsets" / "attention_weights") with its output rows
    split as they are laid out: [heads, levels, points, 2 (x, y) or 1, *in]."""
    return t.reshape(heads, levels, points, 2 if layer == "sampling_offsets" else 1, *t.shape[1:])


def fewer_encoder_levels(sd: Mapping[str, torch.Tensor], old: int, new: int, heads: int, points: int,
                         prefix: str = "pixel_decoder.") -> dict[str, torch.Tensor]:
    """A state_dict holding a pixel decoder with `old` encoder levels, re-placed for one with `new` < `old`.

    The encoder keeps attending to the `new` coarsest levels (the sampling offsets and attention weights of the
    dropped finer levels are cut out, and their level encodings); each map the encoder gives up takes its input
    projection as its FPN lateral (the conv bias goes: laterals have none); the existing FPN steps move to the
    next indices. The FPN output convs of the given-up maps are absent (they keep a fresh init). Other keys pass
    through unchanged. Tensors are views of `sd`'s where possible.
    """
    if not 1 <= new < old:
        raise ValueError(f"fewer_encoder_levels: need 1 <= new < old, got old={old}, new={new}")
    out: dict[str, torch.Tensor] = {}
    for key, t in sd.items():
        if not key.startswith(prefix):
            out[key] = t
            continue
        name = key[len(prefix):]
        parts = name.split(".")
        if _is_sampling_rows(parts):
            t = _sampling_rows(t, parts[-2], heads, old, points)[:, :new].reshape(-1, *t.shape[1:])
        elif name == "level_encoding.weight":
            t = t[:new]
        elif parts[0] == "input_convs" and int(parts[1]) >= new:
            if parts[2:] == ["conv", "bias"]:
                continue
            name = ".".join(["lateral_convs", str(int(parts[1]) - new)] + parts[2:])
        elif parts[0] in ("lateral_convs", "output_convs"):
            name = ".".join([parts[0], str(int(parts[1]) + old - new)] + parts[2:])
        out[prefix + name] = t
    return out


def fewer_encoder_points(sd: Mapping[str, torch.Tensor], old: int, new: int, heads: int, levels: int,
                         prefix: str = "pixel_decoder.") -> dict[str, torch.Tensor]:
    """A state_dict holding a pixel decoder whose deformable encoder samples `old` points per head and level,
    re-placed for one sampling `new` < `old`: the sampling offsets and attention weights of the first `new` points
    are kept (mmcv's grid init orders each head's points by distance, nearest first; in the shipped omg-seg-tiny the
    first two points carry 65-79 % of the attention), the softmax renormalises over those. Other keys pass through.
    """
    if not 1 <= new < old:
        raise ValueError(f"fewer_encoder_points: need 1 <= new < old, got old={old}, new={new}")
    out: dict[str, torch.Tensor] = {}
    for key, t in sd.items():
        parts = key[len(prefix):].split(".") if key.startswith(prefix) else []
        if _is_sampling_rows(parts):
            t = _sampling_rows(t, parts[-2], heads, levels, old)[:, :, :new].reshape(-1, *t.shape[1:])
        out[key] = t
    return out


__all__ = ["MSDeformAttnPixelDecoder", "ConvGN", "FFN", "fewer_encoder_levels", "fewer_encoder_points",
           "reference_points"]
