"""Choosing, per prompt, between the prompt decoder's mask and the object query the image already found there.

OMG-Seg answers a click or box with a prompt query run through the decoder (official behaviour,
`prompt_source: decoder`). The same image pass also produced object queries (the panoptic ones); when the prompt
path is weak (the shipped small model: held-out click mIoU 0.38 from the prompt decoder vs 0.70 with `auto`,
models/MODEL_CARD.md) the object query is the better answer. `prompt_source`:
- "decoder": always the prompt decoder's mask (official);
- "queries": always the object query: for a click the query that panoptic fusion would assign the clicked pixel
  to (argmax over queries of class score x mask probability there); for a box the query whose mask box fits the
  given box best (box IoU x class score);
- "auto" (default): the decoder's mask unless the object query is more convincing: for a click, when the decoder
  mask misses the click or its objectness is below the query's class score x mask probability at the click; for a
  box, when the query's mask box has a higher IoU with the given box than the decoder mask's box.
The chosen answer is then refined by the prompt's geometry (prompt_refine.py: box crop, clicked component); the
choice itself compares the unrefined masks (cut to a box, a stuff mask covering the image would fit every box).
Candidates are scored on the 1/4-resolution logits (cheap for 300 queries); for boxes the best TOP_K are
re-checked with their full-resolution masks, which are then reused as the answer; a click's chosen query is
upsampled exactly like every other mask. Coordinates: points [P, 2] xy and boxes [B, 4] xyxy in original pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import PROMPT_SOURCES, TaskThresholds
from .postprocess import masks_for_queries
from .preprocess import ImageMeta
from ..structures import Segments, box_iou, masks_to_boxes

#: Box prompts: object queries re-scored with exact (full-resolution) mask boxes per prompt.
TOP_K = 4


@dataclass
class QueryChoice:
    """Per prompt: the best object query, its confidence, and whether it replaces the decoder's mask."""

    query: np.ndarray       # int64 [P], index into the decoder's object queries
    confidence: np.ndarray  # float32 [P]: class score x mask probability at the click, or x box IoU for boxes
    use_query: np.ndarray   # bool [P]
    n_points: int = 0       # rows [0, n_points) are clicks, the rest boxes
    box_masks: Optional[np.ndarray] = None  # bool [P - n_points, H0, W0]: each box's chosen query mask (upsampled)


def query_probs_at(mask_logits: torch.Tensor, points: np.ndarray, meta: ImageMeta) -> torch.Tensor:
    """Mask probabilities of every query at original-image pixels: mask_logits [Q, h4, w4], points [P, 2] xy
    -> float32 [Q, P] (bilinear on the 1/4 grid, pixel centres, the geometry upsample_mask_logits uses)."""
    sx, sy = meta.scale_xy
    hp, wp = meta.pad_shape
    px = np.clip(np.floor(points[:, 0]), 0, meta.ori_shape[1] - 1) + 0.5
    py = np.clip(np.floor(points[:, 1]), 0, meta.ori_shape[0] - 1) + 0.5
    grid = torch.tensor(np.stack([px * sx / wp * 2 - 1, py * sy / hp * 2 - 1], -1), dtype=torch.float32,
                        device=mask_logits.device)
    v = F.grid_sample(mask_logits.float()[None], grid[None, None], mode="bilinear", align_corners=False)
    return v[0, :, 0].sigmoid()  # [Q, P]


def query_boxes(mask_logits: torch.Tensor, meta: ImageMeta, mask_threshold: float) -> np.ndarray:
    """Approximate xyxy boxes (original pixels) of every query's mask from the 1/4 grid -> float32 [Q, 4]."""
    h, w = meta.img_shape
    logit_thr = float(np.log(mask_threshold / (1 - mask_threshold))) if 0 < mask_threshold < 1 else 0.0
    crop = mask_logits[:, : (h + 3) // 4, : (w + 3) // 4]
    boxes = masks_to_boxes((crop.float() > logit_thr).cpu().numpy()) * 4.0
    sx, sy = meta.scale_xy
    return boxes / np.array([sx, sy, sx, sy], np.float32)


def choose_queries(mask_logits: torch.Tensor, query_scores: torch.Tensor, meta: ImageMeta,
                   points: np.ndarray, boxes: np.ndarray, decoder_masks: np.ndarray, decoder_scores: np.ndarray,
                   thresholds: TaskThresholds = TaskThresholds()) -> QueryChoice:
    """Decide per prompt (points first, then boxes, the order of `prompt()`) by thresholds.prompt_source.

    mask_logits [Q, h4, w4] and query_scores [Q] (best non-void class probability) of the object queries;
    decoder_masks bool [P+B, H0, W0] and decoder_scores [P+B] (objectness) from the prompt decoder.
    """
    mode = thresholds.prompt_source
    if mode not in PROMPT_SOURCES:
        raise ValueError(f"prompt_source must be one of {list(PROMPT_SOURCES)}, got {mode!r}")
    n_pts, n_box = len(points), len(boxes)
    query = np.zeros(n_pts + n_box, np.int64)
    conf = np.zeros(n_pts + n_box, np.float32)
    use = np.zeros(n_pts + n_box, bool)
    if mode == "decoder" or mask_logits.shape[0] == 0 or n_pts + n_box == 0:
        return QueryChoice(query, conf, use)
    s = query_scores.float().cpu()
    if n_pts:
        fit = (query_probs_at(mask_logits, points, meta).cpu() * s[:, None]).numpy()  # [Q, P]
        query[:n_pts] = fit.argmax(0)
        conf[:n_pts] = fit.max(0)
        for i, (x, y) in enumerate(np.floor(points).astype(np.int64)):
            y = min(max(y, 0), meta.ori_shape[0] - 1)
            x = min(max(x, 0), meta.ori_shape[1] - 1)
            decoder_ok = bool(decoder_masks[i, y, x]) and decoder_scores[i] >= conf[i]
            use[i] = mode == "queries" or not decoder_ok
    if n_box:
        # coarse boxes from the 1/4 grid pick TOP_K candidates per box; their exact masks decide
        coarse = box_iou(boxes, query_boxes(mask_logits, meta, thresholds.mask_threshold)) * s.numpy()[None]
        cand = np.unique(np.argsort(-coarse, axis=1)[:, :TOP_K])
        cand_masks = masks_for_queries(mask_logits, cand.tolist(), meta, thresholds)
        exact = box_iou(boxes, masks_to_boxes(cand_masks))
        fit = exact * s.numpy()[cand][None]  # [B, K']
        best = fit.argmax(1)
        query[n_pts:] = cand[best]
        conf[n_pts:] = fit.max(1)
        own_iou = box_iou(boxes, masks_to_boxes(decoder_masks[n_pts:])).diagonal()
        use[n_pts:] = (mode == "queries") | (exact[np.arange(n_box), best] > own_iou)
        return QueryChoice(query, conf, use, n_pts, cand_masks[best])
    return QueryChoice(query, conf, use, n_pts)


def replace_with_queries(seg: Segments, choice: QueryChoice, mask_logits: torch.Tensor, query_feat: torch.Tensor,
                         query_scores: torch.Tensor, query_classes: torch.Tensor, class_names: Sequence[str],
                         num_things: int, meta: ImageMeta, thresholds: TaskThresholds) -> Segments:
    """`seg` (prompt results, prompt order) with the rows choice.use_query taken from their object query: mask
    (mask_logits [Q, h4, w4] upsampled like every mask), score (class probability, query_scores [Q]), class
    (query_classes [Q]), embedding (query_feat [Q, D]) and query_index."""
    rows = np.flatnonzero(choice.use_query)
    if len(rows) == 0:
        return seg
    q = choice.query[rows]
    qt = torch.as_tensor(q, device=mask_logits.device)
    masks, scores, class_ids = seg.masks.copy(), seg.scores.copy(), seg.class_ids.copy()
    names, query_index = list(seg.class_names), seg.query_index.copy()
    clicks, box_rows = rows[rows < choice.n_points], rows[rows >= choice.n_points]
    masks[clicks] = masks_for_queries(mask_logits, choice.query[clicks].tolist(), meta, thresholds)
    if len(box_rows):
        masks[box_rows] = choice.box_masks[box_rows - choice.n_points]
    scores[rows] = query_scores[qt].float().cpu().numpy()
    class_ids[rows] = query_classes[qt].cpu().numpy()
    for r in rows:
        names[r] = class_names[int(class_ids[r])]
    query_index[rows] = q
    emb = seg.embeddings
    if emb is not None:
        emb = emb.copy()
        emb[rows] = query_feat[qt].float().cpu().numpy()
    extra = dict(seg.extra)
    if "class_scores" in extra:
        extra["class_scores"] = np.array(extra["class_scores"], np.float32)
        extra["class_scores"][rows] = scores[rows]
    return Segments(masks=masks, scores=scores, class_ids=class_ids, class_names=names,
                    is_thing=class_ids < num_things, embeddings=emb, query_index=query_index, task="prompt",
                    extra=extra)


__all__ = ["PROMPT_SOURCES", "QueryChoice", "replace_with_queries", "query_probs_at", "query_boxes", "choose_queries"]
