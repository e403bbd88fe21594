"""Prediction heads shared by every decoder layer: mask embedding, open-vocabulary class embedding, objectness.

The class *logits* are computed outside the exported graphs by `classify`, so the vocabulary can change without
re-exporting: the graph outputs L2-normalised class embeddings, `classify` takes the cosine against the text
embeddings [C, K synonyms, E], keeps the best synonym, multiplies by exp(logit_scale) (= 100 for OMG-Seg) and
appends the "no object" logit, which is exactly 0 (the official classifier's background row is all zeros).
"""
from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn


def mlp3(dim: int, out_dim: int) -> nn.Sequential:
    """Linear-ReLU-Linear-ReLU-Linear (keys .0/.2/.4 as the official mask_embed / cls_proj / iou_embed)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))


def mask_pool(features: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Average `features` inside each mask (official `mask_pool`).

    features [B, C, h, w]; mask_logits [B, Q, h', w'] (resized bilinearly to h x w if needed; pixel in mask when
    logit > 0). Returns [B, Q, C] in features' dtype; an empty mask gives zeros. Computed in float32: in fp16
    the official 1e-8 guard underflows (0/0 = NaN for empty masks) and 1/area weights of large masks are
    subnormal (few bits of precision).
    """
    if mask_logits.shape[-2:] != features.shape[-2:]:
        mask_logits = F.interpolate(mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False)
    m = (mask_logits.detach() > 0).float()
    weights = m / (m.sum(dim=(-1, -2), keepdim=True) + 1e-8)
    pooled = torch.matmul(weights.flatten(2), features.float().flatten(2).transpose(1, 2))
    return pooled.to(features.dtype)


def classify(class_embed: torch.Tensor, text_embed: torch.Tensor,
             logit_scale: Union[float, torch.Tensor] = math.log(100.0)) -> torch.Tensor:
    """Open-vocabulary class logits.

    class_embed [..., E] (L2-normalised query class embeddings); text_embed [C, K, E] (L2-normalised, K synonyms
    or prompt prototypes per class; pad missing synonyms by repeating one); logit_scale: log of the multiplier.
    Returns [..., C + 1]: exp(logit_scale) * max_k cos(q, t_ck), last column = 0 ("no object").
    """
    if text_embed.dim() != 3:
        raise ValueError(f"text_embed must be [C, K, E], got shape {tuple(text_embed.shape)}")
    if text_embed.shape[-1] != class_embed.shape[-1]:
        raise ValueError(f"text_embed dim {text_embed.shape[-1]} != class_embed dim {class_embed.shape[-1]}")
    c, k, e = text_embed.shape
    t = text_embed.to(device=class_embed.device, dtype=class_embed.dtype).reshape(c * k, e)
    sim = torch.matmul(class_embed, t.t()).unflatten(-1, (c, k)).max(dim=-1).values
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=class_embed.device).exp().to(sim.dtype)
    sim = scale * sim
    return torch.cat([sim, torch.zeros_like(sim[..., :1])], dim=-1)


def open_vocab_ensemble(cls_logits: torch.Tensor, clip_logits: torch.Tensor, seen: torch.Tensor,
                        valid: torch.Tensor, alpha: float = 0.4, beta: float = 0.8) -> torch.Tensor:
    """Official `open_voc_inference` geometric ensemble of query and CLIP-region classification.

    cls_logits [..., C+1] (query logits, last = no object); clip_logits [..., C+1] = classify(normalize(
    region_embed), text_embed) (last column ignored); seen [C] (1 = class seen in training, uses alpha; 0 uses
    beta); valid [...] (the mask is non-empty at the CLIP feature size; invalid rows fall back to the query
    probabilities). Returns log-probabilities [..., C+1]: p_c = softmax_c(log(q^(1-a) * k^a)) * (1 - p_void),
    p_void from softmax(cls_logits), + 1e-8 inside the log (as official).
    """
    q = cls_logits[..., :-1].float().softmax(-1)
    k = clip_logits[..., :-1].float().softmax(-1)
    seen_f = seen.to(q.device, torch.float32)
    v = valid.to(q.device, torch.float32)[..., None]
    a, b = alpha * v, beta * v
    mixed = (q ** (1 - a) * k ** a).log() * seen_f + (q ** (1 - b) * k ** b).log() * (1 - seen_f)
    void = F.softmax(cls_logits.float(), dim=-1)[..., -1:]
    return torch.log(torch.cat([mixed.softmax(-1) * (1.0 - void), void], dim=-1) + 1e-8)


def text_embed_from_official_buffer(cls_embed_buffer: torch.Tensor) -> torch.Tensor:
    """Official head buffer [E, C+1, K] (background row last, zeros) -> our [C, K, E] text embeddings."""
    if cls_embed_buffer.dim() != 3:
        raise ValueError(f"official cls_embed buffer must be [E, C+1, K], got {tuple(cls_embed_buffer.shape)}")
    return cls_embed_buffer.permute(1, 2, 0)[:-1].contiguous()


__all__ = ["mlp3", "mask_pool", "classify", "open_vocab_ensemble", "text_embed_from_official_buffer"]
