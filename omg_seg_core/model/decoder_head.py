"""The OMG-Seg head: queries (learned or prompt), masked-attention decoder and per-layer predictions.

Official counterpart: `Mask2FormerVideoHead` minus its pixel decoder (ours lives in `OMGSeg.pixel_decoder`).
Parameter names equal the official ones after stripping `panoptic_head.` (see `model/checkpoint.py`).

One call = predictions before decoder layer 0 and after every layer (num_layers + 1 "predictions"), as in the
official `_forward_head`. Prediction j's mask logits, resized bilinearly to memory level (j % 3) and thresholded
(sigmoid < 0.5 = blocked), mask the cross-attention of decoder layer j; fully blocked rows are unblocked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .classifier import classify, mask_pool, mlp3
from .position_encoding import coordinate_to_encoding, sine_encoding_3d
from .prompt_encoder import ImageSize, boxes_to_bbox_logit, prompt_self_attn_blocked
from .transformer_decoder import TransformerDecoder, unblock_full_rows


@dataclass
class HeadOutputs:
    """Per-prediction lists (index 0 = before decoder layer 0, last = final). With `all_layers=False` the class /
    objectness lists hold only the final prediction; mask_logits always hold every prediction.

    class_embed: [B, Q, E] L2-normalised; iou_logits: [B, Q, 1]; mask_logits: [B, Q, H/4, W/4];
    cls_logits: [B, Q, C+1] when the head has text embeddings (`set_text_embed`), else None;
    query_feat: [B, Q, D] last decoder output before post_norm; query_feat_norm: after post_norm;
    attn_masks: when requested, the blocked masks [B, Q, h_j*w_j] of predictions 0..L-1 BEFORE the full-row fix.
    """

    class_embed: list[torch.Tensor]
    iou_logits: list[torch.Tensor]
    mask_logits: list[torch.Tensor]
    cls_logits: Optional[list[torch.Tensor]]
    query_feat: torch.Tensor
    query_feat_norm: torch.Tensor
    attn_masks: Optional[list[torch.Tensor]] = None


class OMGSegHead(nn.Module):
    """forward(mask_features [B, D, h4, w4], memory [m32, m16, m8] each [B, D, h, w], ...) -> HeadOutputs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.dim, self.num_queries, self.num_levels = d, cfg.num_queries, cfg.num_feature_levels
        self.transformer_decoder = TransformerDecoder(cfg.num_decoder_layers, d, cfg.num_heads, cfg.decoder_ffn_dim)
        self.query_embed = nn.Embedding(cfg.num_queries, d)
        self.query_feat = nn.Embedding(cfg.num_queries, d)
        self.level_embed = nn.Embedding(cfg.num_feature_levels, d)
        self.mask_embed = mlp3(d, d)
        self.iou_embed = mlp3(d, 1)
        self.cls_proj = mlp3(d, cfg.class_embed_dim)
        self.mask_pooling_proj = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        # box / point prompt queries (official enable_box_query=True)
        self.mask_tokens = nn.Embedding(1, d)
        self.pb_embedding = nn.Embedding(2, d)
        self.pos_linear = nn.Linear(2 * d, d)
        self.logit_scale = float(cfg.logit_scale)
        # settable, non-persistent: [C, K, E] text embeddings for computing cls logits inside the head
        self.register_buffer("text_embed", None, persistent=False)

    @property
    def num_layers(self) -> int:
        return len(self.transformer_decoder.layers)

    def set_text_embed(self, text_embed: Optional[torch.Tensor]) -> None:
        """text_embed [C, K, E] (L2-normalised) or None; then forward() also returns cls logits [.., C+1]."""
        if text_embed is not None:
            e = self.cls_proj[4].out_features
            if text_embed.dim() != 3 or text_embed.shape[-1] != e:
                raise ValueError(f"text_embed must be [C, K, {e}], got shape {tuple(text_embed.shape)}")
            text_embed = text_embed.to(self.query_feat.weight.device)
        self.text_embed = text_embed

    # ---- queries -------------------------------------------------------------------------------------------
    def learned_queries(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (query_feat, query_pos), each [B, Q, D]."""
        feat = self.query_feat.weight[None].expand(batch_size, -1, -1)
        pos = self.query_embed.weight[None].expand(batch_size, -1, -1)
        return feat, pos

    def prompt_queries(self, boxes: torch.Tensor, image_size: ImageSize) -> tuple[torch.Tensor, torch.Tensor]:
        """boxes [B, P, 4] (or [P, 4]) xyxy in resized-image px, image_size (h, w) or [B, 2] ->
        (query_feat, query_pos) each [B, P, D] (see prompt_encoder.py for the encoding)."""
        logit = boxes_to_bbox_logit(boxes, image_size)
        dtype = self.pos_linear.weight.dtype
        pos = self.pos_linear(coordinate_to_encoding(logit.sigmoid(), self.dim // 2).to(dtype))
        feat = (self.pb_embedding.weight[0] + self.mask_tokens.weight[0]).expand(pos.shape[0], pos.shape[1], -1)
        return feat, pos

    # ---- predictions ---------------------------------------------------------------------------------------
    def predict(self, query: torch.Tensor, mask_features: torch.Tensor, with_class: bool = True
                ) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], torch.Tensor]:
        """query [B, Q, D] (pre post_norm) -> (class_embed [B, Q, E] | None, iou [B, Q, 1] | None, masks [B, Q, h, w])."""
        qn = self.transformer_decoder.post_norm(query)
        b, d, h, w = mask_features.shape
        masks = torch.matmul(self.mask_embed(qn), mask_features.flatten(2)).view(b, -1, h, w)
        if not with_class:
            return None, None, masks
        pooled = self.mask_pooling_proj(mask_pool(mask_features, masks))
        class_embed = F.normalize(self.cls_proj(pooled + qn), dim=-1)
        return class_embed, self.iou_embed(qn), masks

    @staticmethod
    def attn_blocked(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """mask logits [B, Q, h4, w4] -> bool [B, Q, h*w] at the memory size, True = not attended."""
        m = F.interpolate(masks.detach(), size=size, mode="bilinear", align_corners=False)
        return m.flatten(2).sigmoid() < 0.5

    def forward(self, mask_features: torch.Tensor, memory: Sequence[torch.Tensor],
                queries: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                self_blocked: Optional[torch.Tensor] = None, all_layers: bool = True,
                forced_attn_masks: Optional[Sequence[torch.Tensor]] = None,
                return_attn_masks: bool = False) -> HeadOutputs:
        """Run the decoder.

        queries: (query_feat, query_pos) [B, Q, D] each; None = the learned queries. For prompt queries pass
        `self.prompt_queries(...)` and `self_blocked = prompt_self_attn_blocked(P)` (or use `forward_prompts`).
        forced_attn_masks: optional teacher forcing (tests): entry j, bool [B or 1, Q, h*w] (True = blocked, before
        the full-row fix), replaces the mask decoder layer j would use. None costs nothing.
        """
        if len(memory) != self.num_levels:
            raise ValueError(f"head expects {self.num_levels} memory levels, got {len(memory)}")
        bs = mask_features.shape[0]
        dtype = mask_features.dtype
        srcs, poss, sizes = [], [], []
        for i, m in enumerate(memory):
            h, w = int(m.shape[-2]), int(m.shape[-1])
            srcs.append(m.flatten(2).permute(0, 2, 1) + self.level_embed.weight[i].view(1, 1, -1))
            pos = sine_encoding_3d(h, w, self.dim // 2, m.device).to(dtype)
            poss.append(pos.flatten(1).permute(1, 0)[None])
            sizes.append((h, w))
        feat, pos = self.learned_queries(bs) if queries is None else queries
        n_layers = self.num_layers
        text = self.text_embed
        ces, ious, masks_all, blocked_all = [], [], [], []

        def record(q: torch.Tensor, last: bool) -> torch.Tensor:
            ce, iou, masks = self.predict(q, mask_features, with_class=all_layers or last)
            if ce is not None:
                ces.append(ce)
                ious.append(iou)
            masks_all.append(masks)
            return masks

        masks = record(feat, n_layers == 0)
        for i in range(n_layers):
            lvl = i % self.num_levels
            if forced_attn_masks is not None:
                blocked = forced_attn_masks[i].to(masks.device)
            else:
                blocked = self.attn_blocked(masks, sizes[lvl])
            if return_attn_masks:
                blocked_all.append(blocked)
            layer = self.transformer_decoder.layers[i]
            feat = layer(feat, pos, srcs[lvl], poss[lvl], unblock_full_rows(blocked), self_blocked)
            masks = record(feat, i == n_layers - 1)
        cls = [classify(ce, text, self.logit_scale) for ce in ces] if text is not None else None
        return HeadOutputs(ces, ious, masks_all, cls, feat, self.transformer_decoder.post_norm(feat),
                           blocked_all if return_attn_masks else None)

    def forward_prompts(self, mask_features: torch.Tensor, memory: Sequence[torch.Tensor], boxes: torch.Tensor,
                        image_size: ImageSize, **kw) -> HeadOutputs:
        """Prompt-query decoding: boxes [B, P, 4] (or [P, 4]) xyxy in resized-image px -> HeadOutputs over P."""
        queries = self.prompt_queries(boxes, image_size)
        blocked = prompt_self_attn_blocked(queries[0].shape[1], mask_features.device)
        return self.forward(mask_features, memory, queries=queries, self_blocked=blocked, **kw)


__all__ = ["OMGSegHead", "HeadOutputs"]
