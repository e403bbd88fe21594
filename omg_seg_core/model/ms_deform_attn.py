"""Multi-scale deformable attention (Deformable DETR) written with `F.grid_sample`.

Numerically this is mmcv's `multi_scale_deformable_attn_pytorch` (bilinear, zero padding, align_corners=False),
which the official OMG-Seg code runs on CPU; it exports to ONNX (GridSample, opset >= 16) and runs on GPU.
Sampling locations are computed in float32 and the sampled values in float32 too, so an fp16 model keeps
sub-pixel sampling precision (fp16 has only ~1e-3 resolution on [0, 1] coordinates).

Parameter names follow mmcv's `MultiScaleDeformableAttention` (sampling_offsets, attention_weights,
value_proj, output_proj) so official state_dict keys load unchanged.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def ms_deform_attn_core(value: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]],
                        sampling_grids: torch.Tensor, attention_weights: torch.Tensor,
                        per_level_sum: bool = False) -> torch.Tensor:
    """Sample and weight values at fractional locations.

    value: [B, N_v, heads, Dh] (levels concatenated, row-major h x w per level)
    spatial_shapes: (h_l, w_l) per level, Python ints (constants in an exported graph)
    sampling_grids: float32 [B, N_q, heads, L, P, 2], (x, y) in grid_sample's [-1, 1] per level
        (= 2 * location - 1 for locations normalised to [0, 1])
    attention_weights: [B, N_q, heads, L, P] (softmaxed over L*P)
    per_level_sum: the export form: sample points-major and sum the weighted samples level by level (another
        float summation order than mmcv's)
    returns [B, N_q, heads*Dh] in value's dtype.
    """
    bs, _, num_heads, head_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_grids.shape
    out_dtype = value.dtype
    value = value.float()
    split = [int(h) * int(w) for h, w in spatial_shapes]
    value_list = value.split(split, dim=1)
    attention_weights = attention_weights.float()
    sampled, out = [], None
    for level, (h, w) in enumerate(spatial_shapes):
        # [B, h*w, heads, Dh] -> [B*heads, Dh, h, w]
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(bs * num_heads, head_dim, int(h), int(w))
        if per_level_sum:
            # points-major: [B, Nq, heads, P, 2] -> [B*heads, P, Nq, 2], so the samples come as [B*heads, Dh, P, Nq]
            # and their weighted sum adds P contiguous rows of Nq (a reduction over the innermost axis of length P
            # is ONNX Runtime's slowest ReduceSum form)
            grid_l = sampling_grids[:, :, :, level].permute(0, 2, 3, 1, 4).flatten(0, 1)
            attn_l = attention_weights[:, :, :, level].permute(0, 2, 3, 1).reshape(bs * num_heads, 1, num_points,
                                                                                   num_queries)
            s = F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
            term = (s * attn_l).sum(2)
            out = term if out is None else out + term
        else:
            # [B, Nq, heads, P, 2] -> [B*heads, Nq, P, 2]
            grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
            sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    if per_level_sum:  # the export form: no [.., L, P] stack (about 0.4 ms per layer in ONNX Runtime)
        out = out.view(bs, num_heads * head_dim, num_queries)
    else:
        attn = attention_weights.transpose(1, 2).reshape(bs * num_heads, 1, num_queries, num_levels * num_points)
        out = (torch.stack(sampled, dim=-2).flatten(-2) * attn).sum(-1).view(bs, num_heads * head_dim, num_queries)
    return out.transpose(1, 2).contiguous().to(out_dtype)


class MSDeformAttn(nn.Module):
    """mmcv MultiScaleDeformableAttention (batch_first, no dropout at inference): returns identity + attention.

    forward(query [B, Nq, D], value [B, Nv, D], query_pos [B, Nq, D], reference_points float32 [B, Nq, L, 2]
    (x, y) in [0, 1], spatial_shapes [(h, w)] * L) -> [B, Nq, D]. The residual is the query WITHOUT its position.
    """

    #: Set by the ONNX export (runtime/onnx_export.py): the sampling grid comes from one linear layer whose
    #: weights already hold the per-level normalisation (plus a constant), instead of offsets / (w, h), x 2, - 1
    #: as separate broadcast ops, and samples are summed level by level: the same maths, fewer and cheaper
    #: ONNX Runtime kernels; float results differ from eager in the last bits, within the runtime parity bounds.
    fold_grid: bool = False

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 3, num_points: int = 4) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} not divisible by num_heads {num_heads}")
        self.embed_dims, self.num_heads, self.num_levels, self.num_points = embed_dims, num_heads, num_levels, num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """mmcv's init: offsets start on a ring of directions (grid init), uniform attention, xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query: torch.Tensor, value: torch.Tensor, query_pos: torch.Tensor,
                reference_points: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        identity = query
        q = query + query_pos
        bs, num_query, _ = q.shape
        num_value = value.shape[1]
        v = self.value_proj(value).view(bs, num_value, self.num_heads, -1)
        weights = self.attention_weights(q).view(bs, num_query, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(bs, num_query, self.num_heads, self.num_levels, self.num_points)
        # offsets are in pixels of each level: divide by (w, h) of that level (float32, exact small integers)
        normalizer = torch.tensor([[float(w), float(h)] for h, w in spatial_shapes], dtype=torch.float32,
                                  device=q.device)
        shape = (bs, num_query, self.num_heads, self.num_levels, self.num_points, 2)
        ref = reference_points.float()[:, :, None, :, None, :]
        if self.fold_grid:  # grid = 2 * (ref + offset / n) - 1 = (2 * ref - 1) + offset * (2 / n)
            scale = (2.0 / normalizer)[None, :, None, :].expand(self.num_heads, -1, self.num_points, -1).reshape(-1)
            base = (2 * ref - 1).expand(shape).reshape(bs, num_query, -1)  # a constant of the exported graph
            grids = (F.linear(q.float(), self.sampling_offsets.weight.float() * scale[:, None],
                              self.sampling_offsets.bias.float() * scale) + base).view(shape)
        else:
            offsets = self.sampling_offsets(q).view(shape)
            locations = ref + offsets.float() / normalizer[None, None, None, :, None, :]
            grids = 2 * locations - 1
        out = ms_deform_attn_core(v, spatial_shapes, grids, weights, per_level_sum=self.fold_grid)
        return identity + self.output_proj(out)


__all__ = ["MSDeformAttn", "ms_deform_attn_core"]
