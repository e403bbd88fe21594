"""Masked-attention transformer decoder (Mask2Former, as mmdet 3.1.0 / mmcv run it), attention written by hand.

Why by hand: `nn.MultiheadAttention(attn_mask=...)` and in-place "unblock fully masked rows" fixes export badly
to ONNX/TensorRT. Here a blocked logit is replaced with a finite large negative value via `torch.where` (on the
float logits), and a row that is blocked everywhere is unblocked before use with out-of-place logical ops (the
official code writes False in place; a bool `torch.where` has no ONNX Runtime kernel).
The arithmetic follows torch's math path (q scaled by sqrt(1/head_dim) before q @ k^T).

Keys follow mmdet: `layers.{i}.cross_attn.attn.{in_proj_weight,in_proj_bias,out_proj.*}`, `self_attn.attn.*`,
`ffn.layers.0.0.*`, `ffn.layers.1.*`, `norms.{0,1,2}.*`, and `post_norm.*`.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .pixel_decoder import FFN


def masked_fill_value(dtype: torch.dtype) -> float:
    """A finite logit for blocked keys: exp() underflows to exactly 0 after the softmax max-subtraction, and it
    stays finite in fp16 (a real -inf would give NaN on fully blocked rows and exports badly)."""
    return -1e4 if dtype in (torch.float16, torch.bfloat16) else -1e9


def unblock_full_rows(blocked: torch.Tensor) -> torch.Tensor:
    """blocked [..., Lk] bool (True = not attended): rows blocked everywhere become fully open (official rule)."""
    # logical ops, not a bool torch.where / in-place write: ONNX Runtime has no bool Where kernel
    full = blocked.all(dim=-1, keepdim=True)
    return torch.logical_and(blocked, torch.logical_not(full))


class _MHACore(nn.Module):
    """Holds nn.MultiheadAttention's parameters under the same names (in_proj_weight [3D, D], out_proj)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)


class MultiheadAttention(nn.Module):
    """mmcv MultiheadAttention (batch_first) with residual: identity + attn(query + query_pos, key + key_pos, value).

    query [B, Lq, D], key/value [B, Lk, D], positions broadcastable to them; blocked: bool, broadcastable to
    [B, heads, Lq, Lk] ([B, Lq, Lk] is expanded over heads; [Lq, Lk] over batch and heads), True = not attended.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        self.attn = _MHACore(dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                query_pos: Optional[torch.Tensor] = None, key_pos: Optional[torch.Tensor] = None,
                blocked: Optional[torch.Tensor] = None) -> torch.Tensor:
        identity = query
        q_in = query if query_pos is None else query + query_pos
        k_in = key if key_pos is None else key + key_pos
        w_q, w_k, w_v = self.attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.attn.in_proj_bias.chunk(3)
        bs, lq, _ = q_in.shape
        lk = k_in.shape[1]
        h, hd = self.num_heads, self.dim // self.num_heads
        q = F.linear(q_in, w_q, b_q).view(bs, lq, h, hd).transpose(1, 2)
        k = F.linear(k_in, w_k, b_k).view(bs, lk, h, hd).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(bs, lk, h, hd).transpose(1, 2)
        logits = torch.matmul(q * math.sqrt(1.0 / hd), k.transpose(-2, -1))  # [B, h, Lq, Lk]
        if blocked is not None:
            if blocked.dim() == 3:
                blocked = blocked[:, None]
            logits = torch.where(blocked, torch.full_like(logits, masked_fill_value(logits.dtype)), logits)
        out = torch.matmul(logits.softmax(-1), v).transpose(1, 2).reshape(bs, lq, self.dim)
        return identity + self.attn.out_proj(out)


class DecoderLayer(nn.Module):
    """Mask2Former layer: masked cross-attention -> LN -> self-attention -> LN -> FFN -> LN."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads)
        self.cross_attn = MultiheadAttention(dim, num_heads)
        self.ffn = FFN(dim, ffn_dim)
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                cross_blocked: Optional[torch.Tensor], self_blocked: Optional[torch.Tensor]) -> torch.Tensor:
        query = self.norms[0](self.cross_attn(query, memory, memory, query_pos, memory_pos, cross_blocked))
        query = self.norms[1](self.self_attn(query, query, query, query_pos, query_pos, self_blocked))
        return self.norms[2](self.ffn(query))


class TransformerDecoder(nn.Module):
    """`layers` (num_layers DecoderLayer) and the shared `post_norm` applied before every prediction head."""

    def __init__(self, num_layers: int, dim: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(dim, num_heads, ffn_dim) for _ in range(num_layers)])
        self.post_norm = nn.LayerNorm(dim)
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)


__all__ = ["TransformerDecoder", "DecoderLayer", "MultiheadAttention", "unblock_full_rows", "masked_fill_value"]
