"""Exemplars: "segment everything like this" and names taught by example ("my mug").

An `Exemplar` describes one example object by four unit vectors read off the cached image, each comparable with
the same vectors of any learned query of any later image:

- `query`: the object's learned-query feature (the decoder's last-layer query after post_norm, the tracker's
  embedding) of the learned query whose mask best matches the example (mask IoU `query_iou`);
- `class_embed`: that query's class embedding (CLIP text space: what kind of thing it is);
- `pooled`: the pixel decoder's stride-4 mask features averaged over the example's mask (mask pooling);
- `colour`: the mean P(basic colour term | pixel) over the example's pixels (colour_names.py), 11 values.

Similarity of a candidate to an exemplar (`similarity_parts`, each in [0, 1]): the cosines of `query`,
`class_embed` and `pooled` mapped by (1 + cos) / 2, and the Bhattacharyya coefficient of the colour distributions.
The score is the weighted geometric mean of the parts (`EXEMPLAR_WEIGHTS`): one clearly wrong part (another colour,
another shape) vetoes a candidate. An exemplar whose example no learned query covered (`query_iou` below
MIN_QUERY_IOU, e.g. a hand-drawn mask over two objects) leaves its query and class parts out.

Candidates are the pieces of the learned queries' thresholded masks, cut at their gaps as split_apart cuts panoptic
things (a small model's query often covers two identical objects side by side), pieces below MIN_PIECE_FRACTION of
the example's area dropped; best first, a candidate whose mask mostly lies inside a better one is dropped (the same
object seen by two queries). Several exemplars of one name (views):
a candidate's score is its best score over them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import torch

from ..structures import Segments
from .colour_names import ColourNamer
from .postprocess import mask_probs_for_queries
from .split_apart import gap_pixels, mask_pieces

#: Weights of the parts in the geometric mean (query, class, pooled, colour); chosen on seed-7 "kind" scenes
#: (docs/predictor.md, "Exemplars"), not on the held-out seed the aims are reported on.
EXEMPLAR_WEIGHTS: dict[str, float] = {"query": 1.0, "class": 1.0, "pooled": 1.0, "colour": 2.0}
#: Below this mask IoU between the example and its best learned query, the query and class parts are left out.
MIN_QUERY_IOU = 0.5
#: A candidate whose mask lies this much (fraction of its pixels) inside a better candidate's is the same object.
DUPLICATE_INSIDE = 0.6
#: Pieces smaller than this fraction of the (smallest) example's area, or than MIN_PIECE_AREA px, are not objects of
#: its kind (fragments of a mask); the same kind further away is still >= 1/10 of the area at 3x the distance.
MIN_PIECE_FRACTION = 0.1
MIN_PIECE_AREA = 16
#: score = similarity x (mean mask probability of the piece) ** this: a confident whole object beats a fragment of
#: it or a mask spilling over two objects (seed-7 kind scenes: AP50 0.76 without, 0.90 with power 1).
CONFIDENCE_POWER = 1.0
#: Learned queries considered per image (best objectness first): bounds the cost of colour and mask work.
MAX_CANDIDATES = 40
PARTS = ("query", "class", "pooled", "colour")


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0:
        raise ValueError("exemplar vector has no direction (zero or not finite)")
    return v / n


@dataclass
class Exemplar:
    """One example object (module docstring). Vectors are float32 and L2-normalised (colour: sums to 1)."""

    name: str
    query: np.ndarray          # [D] learned-query feature
    class_embed: np.ndarray    # [E] class embedding (CLIP text space)
    pooled: np.ndarray         # [D] stride-4 mask features averaged over the example's mask
    colour: np.ndarray         # [11] P(basic colour term), BASIC_COLOUR_TERMS order
    query_iou: float           # mask IoU of the example with its best learned query
    area: int                  # example mask pixels (original image)
    source: str = ""           # how it was given ("click (120, 88)", "box ...", "mask")
    meta: dict = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"query": self.query, "class_embed": self.class_embed, "pooled": self.pooled, "colour": self.colour}

    @property
    def uses_query(self) -> bool:
        return self.query_iou >= MIN_QUERY_IOU


def _grid_weights(mask: np.ndarray, meta: Any, grid: tuple[int, int]) -> np.ndarray:
    """bool [H0, W0] original-image mask -> float32 [h4 * w4] coverage of each stride-4 cell of the padded input."""
    h, w = meta.img_shape
    resized = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    padded = np.zeros(meta.pad_shape, np.float32)
    padded[:h, :w] = resized
    return cv2.resize(padded, (grid[1], grid[0]), interpolation=cv2.INTER_AREA).reshape(-1)


def _pool(mask_features: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """[1, D, h4, w4] features, [N, h4 * w4] weights -> float32 [N, D] weighted means (unnormalised)."""
    f = mask_features[0].float().flatten(1)                     # [D, h4 * w4]
    w = weights.float().to(f.device)
    return ((w @ f.T) / w.sum(1, keepdim=True).clamp_min(1e-6)).cpu().numpy()


def make_exemplar(p: Any, mask: np.ndarray, name: str = "", source: str = "") -> Exemplar:
    """The exemplar of the object under bool [H0, W0] `mask` on the predictor `p`'s cached image (an
    OMGSegPredictor; typed loosely so this module does not import it back). ValueError for an empty mask or one of
    another size than the image."""
    feats, meta = p.features, p.image_meta
    mask = np.asarray(mask)
    if mask.shape != tuple(meta.ori_shape):
        raise ValueError(f"example mask must be the image's size {tuple(meta.ori_shape)} (H, W), got {mask.shape}")
    mask = mask.astype(bool)
    area = int(mask.sum())
    if area == 0:
        raise ValueError("example mask is empty: nothing to learn from (give a click, a box or a non-empty mask)")
    th = p.thresholds
    logits = feats.mask_logits[0]
    cand = _candidate_queries(p)
    probs = mask_probs_for_queries(logits, cand, meta) > th.mask_threshold
    inter = (probs & mask).reshape(len(cand), -1).sum(1)
    union = (probs | mask).reshape(len(cand), -1).sum(1)
    iou = inter / np.maximum(union, 1)
    best = int(np.argmax(iou)) if len(cand) else -1
    q = cand[best] if best >= 0 else 0
    query, class_embed, pooled, colour = (x[0] for x in _describe(p, [q], mask[None]))
    return Exemplar(name=name, query=_unit(query), class_embed=_unit(class_embed), pooled=_unit(pooled),
                    colour=colour, query_iou=float(iou[best]) if best >= 0 else 0.0, area=area, source=source)


def _describe(p: Any, queries: Sequence[int], masks: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What an exemplar holds, for N objects on `p`'s cached image (learned query `queries[i]`, bool [H0, W0]
    `masks[i]`): query features [N, D], class embeddings [N, E], mask-pooled features [N, D] (these three not
    normalised: callers decide what a zero vector means) and colour distributions [N, 11] (each summing to 1)."""
    feats, meta = p.features, p.image_meta
    idx = torch.as_tensor(list(queries), dtype=torch.long)
    grid = tuple(feats.mask_logits.shape[-2:])
    pooled = _pool(feats.mask_features, torch.from_numpy(np.stack([_grid_weights(m, meta, grid) for m in masks])))
    namer = ColourNamer(p.image) if p.image is not None else None
    colour = np.stack([namer.distribution(m) if namer is not None else np.full(11, 1 / 11, np.float32)
                       for m in masks])
    colour = np.asarray(colour / np.maximum(colour.sum(1, keepdims=True), 1e-9), np.float32)
    return (feats.query_feat[0, idx].float().cpu().numpy(), feats.class_embed[0, idx].float().cpu().numpy(),
            pooled, colour)


def _candidate_queries(p: Any) -> list[int]:
    """Learned queries worth comparing, most object-like first (1 - P(no object)), at most MAX_CANDIDATES."""
    cls = p._class_logits()
    objectness = 1.0 - torch.softmax(cls.float(), dim=-1)[:, -1]
    return torch.argsort(objectness, descending=True, stable=True)[:MAX_CANDIDATES].tolist()


def similarity_parts(ex: Exemplar, query: np.ndarray, class_embed: np.ndarray, pooled: np.ndarray,
                     colour: np.ndarray) -> dict[str, np.ndarray]:
    """Each part's similarity in [0, 1] of N candidates to `ex` (module docstring). Inputs: unit [N, D] / [N, E] /
    [N, D] vectors and [N, 11] colour distributions."""
    parts = {"pooled": (1 + pooled @ ex.pooled) / 2,
             "colour": np.sqrt(np.clip(colour, 0, None)) @ np.sqrt(np.clip(ex.colour, 0, None))}
    if ex.uses_query:
        parts["query"] = (1 + query @ ex.query) / 2
        parts["class"] = (1 + class_embed @ ex.class_embed) / 2
    return {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in parts.items()}


def combine(parts: dict[str, np.ndarray], weights: Optional[dict[str, float]] = None) -> np.ndarray:
    """Weighted geometric mean of the parts present -> float32 [N] in [0, 1]."""
    weights = EXEMPLAR_WEIGHTS if weights is None else weights
    total = sum(weights[k] for k in parts)
    log = sum(weights[k] * np.log(np.maximum(v, 1e-6)) for k, v in parts.items())
    return np.exp(log / max(total, 1e-9)).astype(np.float32)


def like(p: Any, exemplars: Sequence[Exemplar], threshold: float, max_results: int, label: str = "",
         weights: Optional[dict[str, float]] = None) -> Segments:
    """Every object on `p`'s cached image like the exemplars (best score over them), best first: score >=
    `threshold`, at most `max_results`, duplicates (a piece mostly inside a better one, or overlapping it with IoU >
    0.5) dropped. class_names are
    `label` (default the first exemplar's name or "like"), class_ids -1, scores the similarity;
    extra["similarity"] = {part: [N]} of the results, extra["exemplar_view"] = index of the best exemplar per result."""
    if not exemplars:
        raise ValueError("like() needs at least one exemplar")
    feats, meta = p.features, p.image_meta
    th = p.thresholds
    label = label or exemplars[0].name or "like"
    queries = _candidate_queries(p)
    probs = mask_probs_for_queries(feats.mask_logits[0], queries, meta)
    gap = gap_pixels(th.split_apart_gap, meta.ori_shape)
    min_area = max(MIN_PIECE_AREA, MIN_PIECE_FRACTION * min(ex.area for ex in exemplars))
    rows, masks, conf = mask_pieces(probs, th.mask_threshold, gap, th.split_apart_min_fraction, min_area)
    cand = [queries[k] for k in rows]  # one row per piece: its query, its mask, its mean mask probability
    if not cand:
        return _empty(feats, meta)
    masks = np.stack(masks)
    score, which, parts = _score(p, exemplars, cand, masks, np.asarray(conf, np.float32), weights)
    order = [int(i) for i in np.argsort(-score, kind="stable") if score[i] >= threshold]
    areas = masks.reshape(len(masks), -1).sum(1)
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= max_results:
            break
        inter = [(masks[i] & masks[j]).sum() for j in chosen]
        if any(n > DUPLICATE_INSIDE * areas[i] or n > 0.5 * (areas[i] + areas[j] - n) for n, j in zip(inter, chosen)):
            continue
        chosen.append(i)
    qidx = [cand[i] for i in chosen]
    seg = Segments(masks=masks[chosen], scores=score[chosen].astype(np.float32),
                   class_ids=np.full(len(chosen), -1), class_names=[label] * len(chosen),
                   is_thing=np.ones(len(chosen), bool), query_index=np.array(qidx, np.int64),
                   embeddings=feats.query_feat[0, qidx].float().cpu().numpy() if qidx
                   else np.zeros((0, feats.query_feat.shape[-1]), np.float32), task="like")
    seg.extra["similarity"] = {k: v[chosen] for k, v in parts.items()}
    seg.extra["exemplar_view"] = which[chosen].astype(np.int64)
    return p.edge_refine(seg, exclusive=False)


def _score(p: Any, exemplars: Sequence[Exemplar], queries: Sequence[int], masks: np.ndarray, conf: np.ndarray,
           weights: Optional[dict[str, float]] = None
           ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Scores of N candidates (learned query `queries[i]` with bool [H0, W0] `masks[i]` of mean mask probability
    `conf[i]`) against the exemplars: (score [N] = best over exemplars of similarity x conf ** CONFIDENCE_POWER,
    index [N] of that exemplar, its parts {part: [N]}, NaN where a part was left out)."""
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)  # noqa: E731
    query, cemb, pooled, colour = _describe(p, queries, masks)
    query, cemb, pooled = unit(query), unit(cemb), unit(pooled)
    factor = np.clip(conf, 0.0, 1.0) ** CONFIDENCE_POWER
    per = [similarity_parts(ex, query, cemb, pooled, colour) for ex in exemplars]
    all_scores = np.stack([combine(parts, weights) * factor for parts in per])  # [X, N]
    which = all_scores.argmax(0)
    n = len(masks)
    parts = {k: np.array([per[which[i]][k][i] if k in per[which[i]] else np.nan for i in range(n)], np.float32)
             for k in PARTS}
    return all_scores.max(0).astype(np.float32), which, parts


def score_segments(p: Any, seg: Segments, exemplars: Sequence[Exemplar]) -> tuple[np.ndarray, np.ndarray]:
    """(score [N], best exemplar index [N]) of each row of `seg` (a result on `p`'s cached image whose rows carry
    their learned query in `query_index`; rows without one score 0) against the exemplars, as `like` scores."""
    n = len(seg)
    score, which = np.zeros(n, np.float32), np.zeros(n, np.int64)
    rows = [i for i in range(n) if seg.query_index[i] >= 0 and seg.masks[i].any()]
    if not rows or not exemplars:
        return score, which
    q = [int(seg.query_index[i]) for i in rows]
    probs = mask_probs_for_queries(p.features.mask_logits[0], q, p.image_meta)
    conf = np.array([float(probs[k][seg.masks[i]].mean()) for k, i in enumerate(rows)], np.float32)
    s, w, _ = _score(p, exemplars, q, seg.masks[rows], conf)
    score[rows], which[rows] = s, w
    return score, which


def label_exemplars(p: Any, seg: Segments) -> Segments:
    """Rename the things of a per-frame result (panoptic / instances on `p`'s cached image) that are like a taught
    exemplar (`p.exemplars`, score >= thresholds.like_threshold; the best name wins): class_names[i] = the name,
    class_ids unchanged; extra["exemplar_names"] [N] ("" = none). In place; returns `seg`."""
    names = p.exemplars.names()
    seg.extra["exemplar_names"] = [""] * len(seg)
    rows = np.flatnonzero(seg.is_thing)
    if not names or not len(rows):
        return seg
    views = [(n, v) for n in names for v in p.exemplars.views(n)]
    # every view of every name scored in one pass (the segments' features are read once); the best view's name is
    # the best name
    score, which = score_segments(p, seg[rows], [v for _, v in views])
    for k, i in enumerate(rows):
        if score[k] >= p.thresholds.like_threshold:
            seg.class_names[i] = seg.extra["exemplar_names"][i] = views[which[k]][0]
    return seg


def _empty(feats: Any, meta: Any) -> Segments:
    seg = Segments.empty(meta.ori_shape, "like", feats.query_feat.shape[-1])
    seg.extra["similarity"] = {k: np.zeros(0, np.float32) for k in PARTS}
    seg.extra["exemplar_view"] = np.zeros(0, np.int64)
    return seg


__all__ = ["Exemplar", "make_exemplar", "like", "score_segments", "label_exemplars", "similarity_parts", "combine",
           "EXEMPLAR_WEIGHTS", "MIN_QUERY_IOU",
           "PARTS"]
