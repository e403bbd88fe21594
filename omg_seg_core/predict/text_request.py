"""The body of a text request ("segment the red box") on the predictor's cached image: `text_request`.

Steps, in order (each step's module says how it works):
1. text_query.extract_phrase: strip command words -> "red box"; text_position.split_position: position words
   ("the left ...", "the second ... from the right") are split off and resolved geometrically at the end;
2. text_query.phrase_scores: every learned query's probability of being the phrase (class head, plus the CLIP
   region ensemble when the model has one);
3. the best-scoring queries above thresholds.text_score_thr become candidates: max_results + TEXT_EXTRA_CANDIDATES
   of them (their masks may break into pieces), or POSITION_CANDIDATES when a position picks among matches;
4. text_candidates.rank_pieces: candidate masks cut at their gaps (split_apart's rule), each piece ranked by phrase
   score x mask confidence ** text_confidence_power x colour fit ** text_colour_power (colour_names.py);
5. with a spatial hint (points / boxes, text_hint.py) each piece's rank is multiplied by how well it fits the hint
   (HINT_CANDIDATES queries are considered: the pointed-at object may not be the phrase's best match); a phrase
   that only points ("this", "that one") with a hint is answered as a click / box prompt;
6. the first max_results pieces (or the one a position word picks), borders snapped to colour edges.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from ..structures import Segments
from .colour_names import ColourNamer, colour_term
from .postprocess import mask_probs_for_queries
from .split_apart import gap_pixels
from .text_candidates import RankedPieces, rank_pieces
from .text_hint import SpatialHint, hint_factor, is_deictic
from .text_position import pick_candidate, split_position
from .text_query import extract_phrase, phrase_scores

#: Candidate queries beyond max_results: a query's mask may break into pieces, and the ranking may prefer a piece
#: of a lower-scored query (a better colour fit, a more confident mask).
TEXT_EXTRA_CANDIDATES = 4
#: Candidate queries when a position word picks among the matches ("the second red box from the left").
POSITION_CANDIDATES = 8
#: Candidate queries with a spatial hint: the object pointed at may rank below other matches of the phrase.
HINT_CANDIDATES = 12


def text_request(p: Any, query: str, max_results: Optional[int] = None, hint: Optional[SpatialHint] = None
                 ) -> Segments:
    """Masks for a free-text request on the cached image of `p` (an OMGSegPredictor, which calls this from its
    `text`; typed loosely so this module does not import the predictor back), best first. `hint`: where the
    object is (text_hint.py), or None."""
    feats, meta = p.features, p.image_meta
    th = p.thresholds
    phrase = extract_phrase(query)
    base, position = split_position(phrase)
    n = th.text_max_results if max_results is None else max_results
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"max_results must be a positive integer, got {max_results!r}")
    if hint is not None and hint.positive and position is None and is_deictic(base):
        return _pointing_only(p, query, phrase, hint)
    with p.timed("text_encode"):
        p_emb = p.phrase_embedding(base)
    with p.timed("text_score"):
        dup = next((i for i, syns in enumerate(p.vocabulary.synonyms()) if base in syns), None)
        region = p.region_embed(feats) if p.cfg.has_clip_head and feats.clip_feat is not None else None
        scores = phrase_scores(feats.class_embed[0], p.text_embed, p_emb, p.cfg.logit_scale, dup, region,
                               p.cfg.ensemble_alpha_seen, p.cfg.ensemble_alpha_unseen).cpu()
    with p.timed("postprocess"):
        order = torch.sort(scores, descending=True, stable=True).indices
        top = n + TEXT_EXTRA_CANDIDATES if position is None else POSITION_CANDIDATES
        if hint is not None:
            top = max(top, HINT_CANDIDATES)
        order = order[scores[order] >= th.text_score_thr][:top].tolist()
        ranked = rank_text_pieces(p, order, scores[order].numpy(), base)
        if hint is not None and len(ranked):
            ranked = _apply_hint(ranked, hint, th.text_hint_scale_px)
        if position is None:
            keep = list(range(min(n, len(ranked))))
        else:
            found = pick_candidate(ranked, position, th.text_position_rel)
            keep = [] if found is None else [found]
        qidx = [order[int(ranked.rows[i])] for i in keep]
        seg = Segments(masks=ranked.masks[keep], scores=scores[qidx].numpy(), class_ids=np.full(len(keep), -1),
                       class_names=[phrase] * len(keep), is_thing=np.ones(len(keep), bool),
                       query_index=np.array(qidx, np.int64),
                       embeddings=feats.query_feat[0, qidx].float().cpu().numpy() if qidx else
                       np.zeros((0, feats.query_feat.shape[-1]), np.float32), task="text")
        seg.extra["rank_scores"] = ranked.rank[keep]
        seg = p.edge_refine(seg, exclusive=False)
    seg.extra.update(query=query, phrase=phrase)
    if hint is not None:
        seg.extra["hint"] = {"used": hint.describe(), "fit": [float(f) for f in ranked.hint[keep]]}
    if position is not None:
        seg.extra["position"] = {"side": position.side, "rank": position.rank, "described": base}
    return seg


def _apply_hint(ranked: RankedPieces, hint: SpatialHint, scale_px: float) -> RankedPieces:
    """Re-rank pieces by rank x hint_factor (stable: ties keep the phrase ranking)."""
    fit = hint_factor(ranked.masks, hint, scale_px)
    rank = ranked.rank * fit
    o = np.argsort(-rank, kind="stable")
    out = RankedPieces(ranked.rows[o], ranked.masks[o], rank[o], ranked.score[o], ranked.confidence[o],
                       ranked.colour[o])
    out.hint = fit[o]
    return out


def _pointing_only(p: Any, query: str, phrase: str, hint: SpatialHint) -> Segments:
    """"segment this" + a point / box: the click's (box prompt's) answer, as `prompt` gives it."""
    seg = p.prompt(points=hint.points if len(hint.points) else None,
                   point_labels=hint.labels if len(hint.points) else None,
                   boxes=hint.boxes if len(hint.boxes) else None)
    seg = seg[:1]
    seg.class_names = [phrase or "this"] * len(seg)
    seg.task = "text"
    seg.extra.update(query=query, phrase=phrase, hint={"used": hint.describe(), "fit": [1.0] * len(seg),
                                                       "as_prompt": True})
    return seg


def rank_text_pieces(p: Any, queries: list[int], scores: np.ndarray, phrase: str) -> RankedPieces:
    """The candidate queries' masks cut into pieces and ranked by phrase score, mask confidence and colour
    (text_candidates.py; thresholds.text_confidence_power / text_colour_power)."""
    th, meta = p.thresholds, p.image_meta
    probs = mask_probs_for_queries(p.features.mask_logits[0], queries, meta)
    image = p.image
    term = colour_term(phrase) if th.text_colour_power > 0 and image is not None else None
    colours = ColourNamer(image) if term is not None else None
    return rank_pieces(probs, scores, th.mask_threshold, gap_pixels(th.split_apart_gap, meta.ori_shape),
                       th.split_apart_min_fraction, th.text_confidence_power, th.text_colour_power, colours, term)


__all__ = ["text_request", "rank_text_pieces", "TEXT_EXTRA_CANDIDATES", "POSITION_CANDIDATES"]
