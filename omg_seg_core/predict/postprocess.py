"""Post-processing: decoder outputs -> `Segments` at the original resolution.

Panoptic and instance fusion reproduce the official `OMGFusionHead` (lxtGH/OMG-Seg) exactly, quirks included
(see docs in each function); semantic is Mask2Former's `semantic_inference` (the official code has none).

Inputs (one image, last decoder layer): cls_logits [Q, C+1] (last column = "no object"), mask_logits
[Q, h4, w4] at stride 4 of the PADDED input. Masks follow the official resize chain: bilinear
(align_corners=False) to the padded size, crop to the resized image, bilinear to the original size. Each query's
chain is independent of the others, so only the queries a task keeps are upsampled: results are identical to
upsampling all Q first (300 full-size masks at 1024^2 would cost ~1.3 GB).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TaskThresholds
from .preprocess import ImageMeta
from ..structures import Segments

#: Pixels of the original image processed per chunk of upsampled masks (bounds peak memory, ~64 MB fp32).
#: A frame larger than this is processed one query at a time.
_CHUNK_PIXELS = 16_000_000
#: Pixels per band of rows when the fusion gathers each pixel's winner (bounds its int64 index at ~8 MB).
_BAND_PIXELS = 1 << 20


def upsample_mask_logits(mask_logits: torch.Tensor, meta: ImageMeta, contiguous: bool = True) -> torch.Tensor:
    """[N, h4, w4] logits (any float dtype) -> float32 [N, H0, W0] logits at the original resolution.
    contiguous=False: when the image needed no resize, a view of the padded result (each row [H0, W0] is then
    still contiguous when only rows were padded; saves a copy of all N masks)."""
    if mask_logits.ndim != 3:
        raise ValueError(f"mask_logits must be [N, h, w], got shape {tuple(mask_logits.shape)}")
    h, w = meta.img_shape
    if mask_logits.shape[0] == 0:
        return mask_logits.new_zeros((0, *meta.ori_shape), dtype=torch.float32)
    # [N, 1, h, w] (queries on the batch axis): the CPU kernel then gives the same bits for any N; with queries
    # on the channel axis the vectorised path rounds differently for some channel counts (seen for N = 3).
    x = F.interpolate(mask_logits.float()[:, None], size=meta.pad_shape, mode="bilinear", align_corners=False)
    x = x[:, 0, :h, :w]
    if (h, w) == tuple(meta.ori_shape):
        return x.contiguous() if contiguous else x  # a same-size bilinear resize copies its input exactly
    return F.interpolate(x[:, None], size=meta.ori_shape, mode="bilinear", align_corners=False)[:, 0]


def _chunks(n: int, meta: ImageMeta) -> list[slice]:
    per = max(1, _CHUNK_PIXELS // max(1, meta.ori_shape[0] * meta.ori_shape[1]))
    return [slice(i, min(n, i + per)) for i in range(0, n, per)]


def _take(fg: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """fg bool [n, H, W], idx int [H, W] in [0, n) -> bool [H, W]: fg[idx] per pixel, in bands of rows so the int64
    index gather needs stays ~8 MB whatever the frame size."""
    out = torch.empty(idx.shape, dtype=torch.bool, device=idx.device)
    rows = max(1, _BAND_PIXELS // max(1, idx.shape[1]))
    for r in range(0, idx.shape[0], rows):
        band = idx[r:r + rows].long()[None]
        out[r:r + rows] = fg[:, r:r + rows].gather(0, band)[0]
    return out


def _fuse(mask_logits: torch.Tensor, scores: torch.Tensor, meta: ImageMeta, mask_threshold: float
          ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The panoptic fusion's per-pixel pass, streamed over the kept queries so that full-resolution memory stays a
    few bytes per pixel (not K float32 masks: 20 queries of a 4000x3000 frame would be 960 MB).

    mask_logits [K, h4, w4], scores [K] -> (argmax id int16/int32 [H0, W0] of scores[k] * sigmoid(mask_k), first
    maximum winning; winner_fg bool [H0, W0]: the winning query's sigmoid >= mask_threshold; original_areas [K]:
    each query's (sigmoid >= mask_threshold) pixel count). Identical to the argmax over all K upsampled masks at
    once: the same float products compared in the same order (torch.argmax's tie rule), and each query's upsampling
    does not depend on the others.
    """
    k_all = mask_logits.shape[0]
    id_dtype = torch.int16 if k_all < 2**15 else torch.int32
    best = idx = winner_fg = None
    areas: list[int] = []
    for sl in _chunks(k_all, meta):
        up = upsample_mask_logits(mask_logits[sl], meta, contiguous=False).sigmoid_()
        fg = up >= mask_threshold  # bool [n, H0, W0]: one pass for the chunk, not one per query
        areas += [int(torch.count_nonzero(f)) for f in fg]  # per row: ~8x faster than a batched reduction
        # scores[k] * sigmoid in place (the same float products), then the chunk's argmax in one reduction:
        # max(0) returns the first maximal index, the official argmax's tie rule
        v = up.mul_(scores[sl].to(up.dtype)[:, None, None])
        if v.shape[0] == 1:  # a frame so large that a chunk holds one query: no int64 index map to make
            chunk_best, chunk_idx = v[0], torch.zeros(v.shape[1:], dtype=id_dtype, device=v.device)
        else:
            chunk_best, chunk_idx = v.max(0)
            chunk_idx = chunk_idx.to(id_dtype)
        # the winner's own sigmoid >= thr: one gather per chunk instead of a select per query
        own = _take(fg, chunk_idx)
        if best is None:
            best, idx, winner_fg = chunk_best, chunk_idx, own
        else:  # a later chunk takes a pixel only when strictly better: on ties the earlier query stays
            gt = chunk_best > best
            torch.maximum(best, chunk_best, out=best)
            idx = torch.where(gt, chunk_idx + sl.start, idx)
            winner_fg = torch.where(gt, own, winner_fg)
        del up, fg, v
    return idx, winner_fg, areas


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"mask_threshold must be in (0, 1), got {p}")
    return math.log(p / (1.0 - p))  # exactly 0.0 for 0.5, so `logit > 0` reproduces the official binarisation


def _check(cls_logits: torch.Tensor, mask_logits: torch.Tensor, class_names: Sequence[str]) -> int:
    if cls_logits.ndim != 2 or mask_logits.ndim != 3 or cls_logits.shape[0] != mask_logits.shape[0]:
        raise ValueError(f"expected cls_logits [Q, C+1] and mask_logits [Q, h, w], got {tuple(cls_logits.shape)} "
                         f"and {tuple(mask_logits.shape)}")
    c = cls_logits.shape[1] - 1
    if len(class_names) != c:
        raise ValueError(f"cls_logits has {c} classes but {len(class_names)} class names were given")
    return c


def _rows(x: Optional[torch.Tensor], idx: Sequence[int]) -> Optional[np.ndarray]:
    if x is None:
        return None
    return x[torch.as_tensor(list(idx), dtype=torch.long, device=x.device)].float().cpu().numpy()


def panoptic_postprocess(cls_logits: torch.Tensor, mask_logits: torch.Tensor, meta: ImageMeta, num_things: int,
                         class_names: Sequence[str], thresholds: TaskThresholds = TaskThresholds(),
                         query_feat: Optional[torch.Tensor] = None) -> Segments:
    """Official `OMGFusionHead.panoptic_postprocess` -> Segments (one per panoptic id, in id order of creation).

    Quirk 1: a segment is kept when (argmax area) / (sigmoid >= thr area) >= iou_thr, the argmax area measured
    BEFORE `filter_low_score` removes pixels with sigmoid < thr (so the ratio can exceed 1).
    Quirk 2: stuff segments of the same class merge into one id (= class id); thing ids are cls + k * 1000 with k
    counting accepted thing queries (a thing whose final mask ends up empty still uses its k).
    `extra["panoptic_ids"]` holds these official ids (int64 [N]); score = class probability (max over merged
    stuff queries); query_index / embeddings come from the first query of the segment.
    """
    c = _check(cls_logits, mask_logits, class_names)
    scores, labels = F.softmax(cls_logits.float(), dim=-1).max(-1)
    keep = labels.ne(c) & (scores > thresholds.object_mask_thr)
    kept = torch.nonzero(keep).flatten()
    empty = Segments.empty(meta.ori_shape, "panoptic", None if query_feat is None else query_feat.shape[-1])
    empty.extra["panoptic_ids"] = np.zeros(0, np.int64)
    if kept.numel() == 0:
        return empty
    cur_scores, cur_classes = scores[kept], labels[kept]
    cur_mask_ids, winner_fg, original_areas = _fuse(mask_logits[kept], cur_scores, meta, thresholds.mask_threshold)
    mask_areas = torch.bincount(cur_mask_ids.flatten(), minlength=kept.numel()).tolist()

    # Argmax regions are disjoint, so each id's final mask is the union of its queries' argmax regions (cut to the
    # winner's foreground): the same pixels the official loop writes into its id map. One lookup from query to id
    # row gives that map; the masks are read from it in one comparison.
    order: list[int] = []                 # panoptic ids in order of first write
    row_of: dict[int, int] = {}
    first_query: list[int] = []
    class_of: list[int] = []
    best_score: list[float] = []
    ids_map = cur_mask_ids.cpu().numpy()  # int16/int32 [H0, W0]: kept query winning each pixel
    lut = np.full(kept.numel(), -1, ids_map.dtype)  # kept query -> row of its id in `order`, or -1
    kept_q, classes, q_scores = kept.tolist(), cur_classes.tolist(), cur_scores.tolist()  # no tensor read per query
    instance_id = 1
    for k in range(kept.numel()):
        pred_class = classes[k]
        if not (mask_areas[k] > 0 and original_areas[k] > 0):
            continue
        if mask_areas[k] / original_areas[k] < thresholds.iou_thr:
            continue
        if pred_class < num_things:
            pid = pred_class + instance_id * 1000
            instance_id += 1
        else:
            pid = pred_class  # quirk 2: stuff of one class shares the id
        if pid not in row_of:
            row_of[pid] = len(order)
            order.append(pid)
            first_query.append(kept_q[k])
            class_of.append(pred_class)
            best_score.append(0.0)
        r = row_of[pid]
        lut[k] = r
        best_score[r] = max(best_score[r], q_scores[k])

    rows = lut[ids_map]  # int16/int32 [H0, W0]: id row per pixel, -1 for none
    if thresholds.filter_low_score:
        rows[~winner_fg.cpu().numpy()] = -1  # where query k wins the argmax, winner_fg is its own sigmoid >= thr
    counts = torch.bincount(torch.from_numpy(rows).flatten() + 1, minlength=len(order) + 1)
    present = np.flatnonzero(counts[1:].numpy())
    if not present.size:
        return empty
    out = rows[None] == present[:, None, None]  # bool [N, H0, W0]
    del rows
    ids = [order[i] for i in present]
    cls = [class_of[i] for i in present]
    qidx = [first_query[i] for i in present]
    seg = Segments(
        masks=out,
        scores=np.array([best_score[i] for i in present], np.float32),
        class_ids=np.array(cls, np.int64), class_names=[class_names[i] for i in cls],
        is_thing=np.array([i < num_things for i in cls]), query_index=np.array(qidx, np.int64),
        embeddings=_rows(query_feat, qidx), task="panoptic",
    )
    seg.extra["panoptic_ids"] = np.array(ids, np.int64)
    return seg


@dataclass
class InstanceResults:
    """Official instance results kept per unique query (a query ranks for several classes with ONE mask).

    unique: Segments, one row per query (its mask, box, embedding, query_index; class and score of its first
    result); row: int64 [R] index into `unique` of each result, results in final order (score descending, stable);
    scores float32 [R]; class_ids int64 [R]."""

    unique: Segments
    row: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def expand(self, class_names: Sequence[str]) -> Segments:
        """One Segments row per result (the official output)."""
        u, r = self.unique, self.row
        return Segments(masks=u.masks[r], scores=self.scores, class_ids=self.class_ids,
                        class_names=[class_names[i] for i in self.class_ids], is_thing=np.ones(len(r), bool),
                        boxes=u.boxes[r], query_index=u.query_index[r],
                        embeddings=None if u.embeddings is None else u.embeddings[r], task="instances")


def instance_postprocess(cls_logits: torch.Tensor, mask_logits: torch.Tensor, meta: ImageMeta, num_things: int,
                         class_names: Sequence[str], thresholds: TaskThresholds = TaskThresholds(),
                         query_feat: Optional[torch.Tensor] = None, near: Optional[np.ndarray] = None) -> Segments:
    """Official `OMGFusionHead.instance_postprocess` -> Segments sorted by score (descending, stable).

    top-`max_per_image` (unsorted top-k as official) over Q x C class probabilities (no-object excluded), keep
    thing classes; mask = logit > logit(mask_threshold) (official: > 0); score = class prob * mean sigmoid inside
    the mask. A query may appear with several classes. Results below `instance_score_thr` are dropped (the default
    0.0 keeps the official output, including masks that end up empty after cropping: score 0, box zeros).
    `near` (not official): boxes [K, 4] xyxy in original pixels; only queries whose mask on the 1/4 grid has a
    cell overlapping one of them are kept (their full-resolution masks are not computed).
    """
    return instance_results(cls_logits, mask_logits, meta, num_things, class_names, thresholds, query_feat,
                            near).expand(class_names)


def instance_results(cls_logits: torch.Tensor, mask_logits: torch.Tensor, meta: ImageMeta, num_things: int,
                     class_names: Sequence[str], thresholds: TaskThresholds = TaskThresholds(),
                     query_feat: Optional[torch.Tensor] = None, near: Optional[np.ndarray] = None
                     ) -> InstanceResults:
    """`instance_postprocess` with each query's mask computed and kept once (`InstanceResults`)."""
    c = _check(cls_logits, mask_logits, class_names)
    q = cls_logits.shape[0]
    emb_dim = None if query_feat is None else query_feat.shape[-1]
    none = InstanceResults(Segments.empty(meta.ori_shape, "instances", emb_dim), np.zeros(0, np.int64),
                           np.zeros(0, np.float32), np.zeros(0, np.int64))
    if q == 0 or c == 0:
        return none
    scores = F.softmax(cls_logits.float(), dim=-1)[:, :-1]
    labels = torch.arange(c, device=scores.device).unsqueeze(0).repeat(q, 1).flatten(0, 1)
    k = min(int(thresholds.max_per_image), q * c)
    scores_per_image, top_indices = scores.flatten(0, 1).topk(k, sorted=False)
    labels_per_image = labels[top_indices]
    query_indices = torch.div(top_indices, c, rounding_mode="floor")
    is_thing = labels_per_image < num_things
    scores_per_image, labels_per_image = scores_per_image[is_thing], labels_per_image[is_thing]
    query_indices = query_indices[is_thing]
    # score = class prob x mean sigmoid (<= 1): rows whose class prob is below the threshold cannot pass it,
    # so their masks are not computed
    keep = scores_per_image >= thresholds.instance_score_thr
    if near is not None:
        keep &= _touches(mask_logits, query_indices, near, meta, _logit(thresholds.mask_threshold))
    scores_per_image, labels_per_image = scores_per_image[keep], labels_per_image[keep]
    query_indices = query_indices[keep]
    if query_indices.numel() == 0:
        return none

    # per unique query: binary mask and mean sigmoid inside it (identical to the official per-(query, class) rows)
    uq, inv = torch.unique(query_indices, return_inverse=True)
    thr = _logit(thresholds.mask_threshold)
    binary = torch.empty((uq.numel(), *meta.ori_shape), dtype=torch.bool)
    mask_scores = torch.empty(uq.numel())
    for sl in _chunks(uq.numel(), meta):
        up = upsample_mask_logits(mask_logits[uq[sl]], meta)
        b = up > thr
        # official: (sigmoid * b.float()).sum / (b.float().sum + 1e-6), the same floats; the bytes of the bool mask
        # turned float (~9x faster than bool -> float on CPU) and the sigmoid taken in place
        bf = b.view(torch.uint8).float()
        mask_scores[sl] = (up.sigmoid_().mul_(bf).flatten(1).sum(1) / (bf.flatten(1).sum(1) + 1e-6)).cpu()
        binary[sl] = b.cpu()
    det_scores = scores_per_image.cpu() * mask_scores[inv.cpu()]

    order = torch.sort(det_scores, descending=True, stable=True).indices
    order = order[det_scores[order] >= thresholds.instance_score_thr]
    rows = inv.cpu()[order].numpy()
    cls = labels_per_image.cpu()[order].numpy().astype(np.int64)
    uq_list = uq.cpu().tolist()
    first_cls = np.zeros(len(uq_list), np.int64)
    first_score = np.zeros(len(uq_list), np.float32)
    seen = set()
    for r, cl, sc in zip(rows.tolist(), cls.tolist(), det_scores[order].tolist()):
        if r not in seen:
            seen.add(r)
            first_cls[r], first_score[r] = cl, sc
    unique = Segments(masks=binary.numpy(), scores=first_score, class_ids=first_cls,
                      class_names=[class_names[i] for i in first_cls], is_thing=np.ones(len(uq_list), bool),
                      query_index=np.array(uq_list, np.int64), embeddings=_rows(query_feat, uq_list),
                      task="instances")
    return InstanceResults(unique, rows.astype(np.int64), det_scores[order].numpy(), cls)


def _touches(mask_logits: torch.Tensor, queries: torch.Tensor, boxes: np.ndarray, meta: ImageMeta,
             thr: float) -> torch.Tensor:
    """bool [len(queries)]: the query's mask (logit > thr on the [Hm, Wm] grid of the padded input) has a cell
    overlapping one of `boxes` [K, 4] (xyxy, original pixels)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    hm, wm = mask_logits.shape[-2:]
    # original px -> grid cells: resize by scale_xy, then pad_shape / grid per cell
    sx = meta.scale_xy[0] * wm / meta.pad_shape[1]
    sy = meta.scale_xy[1] * hm / meta.pad_shape[0]
    out = torch.zeros(len(queries), dtype=torch.bool, device=mask_logits.device)
    if not len(queries) or not len(boxes):
        return out
    binary = mask_logits[queries].float() > thr                         # [N, Hm, Wm]
    for x0, y0, x1, y1 in boxes:
        c0, c1 = int(np.floor(x0 * sx)), int(np.ceil(x1 * sx))  # every cell the box overlaps
        r0, r1 = int(np.floor(y0 * sy)), int(np.ceil(y1 * sy))
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, wm), min(r1, hm)
        if c1 > c0 and r1 > r0:
            out |= binary[:, r0:r1, c0:c1].flatten(1).any(1)
    return out


def semantic_postprocess(cls_logits: torch.Tensor, mask_logits: torch.Tensor, meta: ImageMeta, num_things: int,
                         class_names: Sequence[str], thresholds: TaskThresholds = TaskThresholds()) -> Segments:
    """Mask2Former `semantic_inference`: per pixel argmax_c sum_q softmax(cls)[q, c] * sigmoid(mask_q) (no-object
    column dropped), at the original resolution; one segment per present class (class-id order).

    score = mean over the segment's pixels of the winning class's share sum_q p[q,c] m_q / sum_c' (...).
    Every pixel gets a class (as in Mask2Former). Memory: C x H0 x W0 float32 accumulator.
    `thresholds` is accepted for a uniform signature; Mask2Former's semantic inference has no threshold.
    """
    c = _check(cls_logits, mask_logits, class_names)
    if c == 0 or cls_logits.shape[0] == 0:
        return Segments.empty(meta.ori_shape, "semantic")
    probs = F.softmax(cls_logits.float(), dim=-1)[:, :-1]
    acc = torch.zeros((c, *meta.ori_shape), dtype=torch.float32, device=mask_logits.device)
    for sl in _chunks(mask_logits.shape[0], meta):
        m = upsample_mask_logits(mask_logits[sl], meta).sigmoid_()
        acc += torch.einsum("qc,qhw->chw", probs[sl], m)
    best, label = acc.max(0)
    share = best / acc.sum(0).clamp_min(1e-12)
    present = torch.unique(label).tolist()
    masks = torch.stack([label == k for k in present])
    scores = [float(share[masks[i]].mean()) for i in range(len(present))]
    return Segments(
        masks=masks.cpu().numpy(), scores=np.array(scores, np.float32), class_ids=np.array(present, np.int64),
        class_names=[class_names[k] for k in present], is_thing=np.array([k < num_things for k in present]),
        task="semantic",
    )


def prompt_postprocess(mask_logits: torch.Tensor, iou_logits: torch.Tensor, meta: ImageMeta,
                       thresholds: TaskThresholds = TaskThresholds(), cls_logits: Optional[torch.Tensor] = None,
                       class_names: Sequence[str] = (), num_things: int = 0,
                       query_feat: Optional[torch.Tensor] = None,
                       negative_mask_logits: Optional[torch.Tensor] = None) -> Segments:
    """One Segment per prompt, in prompt order (official: mask = sigmoid(upsampled logit) > 0.5).

    score = sigmoid(objectness logit). When cls_logits [P, C+1] are given, class_ids/names are the most likely
    vocabulary class (no-object excluded) and extra["class_scores"] its softmax probability.
    Negative clicks: negative_mask_logits [N, h4, w4] are the masks the model predicts for the negative points
    (run as prompts themselves); a pixel is removed from every positive mask where the strongest negative mask
    is foreground (sigmoid > mask_threshold) AND its logit exceeds the positive mask's logit there, i.e. the
    pixel is better explained by the object under the negative click.
    """
    p = mask_logits.shape[0]
    emb_dim = None if query_feat is None else query_feat.shape[-1]
    if p == 0:
        return Segments.empty(meta.ori_shape, "prompt", emb_dim)
    up = upsample_mask_logits(mask_logits, meta)
    masks = up.sigmoid() > thresholds.mask_threshold
    if negative_mask_logits is not None and negative_mask_logits.shape[0] > 0:
        neg = upsample_mask_logits(negative_mask_logits, meta).max(0).values
        masks &= ~((neg.sigmoid() > thresholds.mask_threshold)[None] & (neg[None] > up))
    scores = torch.sigmoid(iou_logits.float().reshape(p)).cpu().numpy()
    class_ids, names, is_thing = np.full(p, -1, np.int64), [""] * p, np.zeros(p, bool)
    extra = {}
    if cls_logits is not None and cls_logits.shape[-1] > 1:
        probs = F.softmax(cls_logits.float(), dim=-1)[:, :-1]
        cs, ci = probs.max(-1)
        class_ids = ci.cpu().numpy().astype(np.int64)
        names = [class_names[i] for i in class_ids] if class_names else [str(i) for i in class_ids]
        is_thing = class_ids < num_things
        extra["class_scores"] = cs.cpu().numpy().astype(np.float32)
    seg = Segments(masks=masks.cpu().numpy(), scores=scores, class_ids=class_ids, class_names=names,
                   is_thing=is_thing, embeddings=None if query_feat is None else query_feat.float().cpu().numpy(),
                   task="prompt")
    seg.extra.update(extra)
    return seg


def mask_probs_for_queries(mask_logits: torch.Tensor, queries: Sequence[int], meta: ImageMeta) -> np.ndarray:
    """float32 [len(queries), H0, W0]: sigmoid of the upsampled mask logits of the chosen queries only."""
    if len(queries) == 0:
        return np.zeros((0, *meta.ori_shape), np.float32)
    idx = torch.as_tensor(list(queries), dtype=torch.long, device=mask_logits.device)
    return upsample_mask_logits(mask_logits[idx], meta).sigmoid().float().cpu().numpy()


def masks_for_queries(mask_logits: torch.Tensor, queries: Sequence[int], meta: ImageMeta,
                      thresholds: TaskThresholds = TaskThresholds()) -> np.ndarray:
    """bool [len(queries), H0, W0]: sigmoid(upsampled logit) > mask_threshold for the chosen queries only."""
    return mask_probs_for_queries(mask_logits, queries, meta) > thresholds.mask_threshold


__all__ = ["upsample_mask_logits", "panoptic_postprocess", "instance_postprocess", "semantic_postprocess",
           "prompt_postprocess", "masks_for_queries", "mask_probs_for_queries"]
