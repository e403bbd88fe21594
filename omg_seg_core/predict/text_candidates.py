"""Which mask answers a text request: the best-scoring queries' masks, cut into pieces and re-ranked (not official).

`phrase_scores` (query.py) ranks the learned queries by how well their class embedding fits the phrase. Two
things go wrong with a small model, and both are visible in the masks themselves:

- one query's mask often covers two look-alike objects in two places (the red mug and the pink mug); returning
  the whole mask fails the request. Each candidate mask is cut at its gaps (`split_mask`, the same rule and
  thresholds as panoptic's `split_apart`), and every piece becomes a candidate of its own;
- the query's class embedding separates colours poorly ("the blue box" scores a white box nearly as high).

Each piece is ranked by

    rank = phrase_score(query) * confidence(piece) ** confidence_power * colour(piece) ** colour_power

- confidence: the query's mean mask probability (sigmoid) over the piece: a query is surer of the object it
  was trained to find than of the look-alike its mask spills onto;
- colour: P(colour word of the phrase | the piece's pixels) from human colour naming (colour_names.py); 1 when the
  phrase names no basic colour. A small floor (1e-3) keeps a mis-lit object from being ruled out entirely.
Pieces overlapping a better-ranked piece (IoU > 0.5) are dropped, so two queries on one object answer once.
Both powers 0 and no cutting (gap_px < 0) give the plain phrase-score order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..structures import mask_iou
from .split_apart import mask_pieces
from .colour_names import ColourNamer

#: P(colour | piece) floor in the rank product (a shadowed or mis-lit object keeps a chance).
COLOUR_FLOOR = 1e-3


@dataclass
class RankedPieces:
    """Candidates best first: row (index into the caller's query list), piece bool [K, H, W], rank [K], and the
    rank's factors: the row's phrase score, the piece's mean mask probability and its colour fit (1: not used)."""

    rows: np.ndarray
    masks: np.ndarray
    rank: np.ndarray
    score: np.ndarray
    confidence: np.ndarray
    colour: np.ndarray
    hint: Optional[np.ndarray] = None  # fit to a spatial hint (text_hint.py) when one re-ranked the pieces

    def __len__(self) -> int:
        return len(self.rows)


def rank_pieces(probs: np.ndarray, scores: np.ndarray, mask_threshold: float, gap_px: float, min_fraction: float,
                confidence_power: float = 0.0, colour_power: float = 0.0,
                colours: Optional[ColourNamer] = None, term: Optional[str] = None) -> RankedPieces:
    """Rank the pieces of candidate masks (module docstring).

    probs: float [K, H, W] mask probabilities (sigmoid, camera resolution) of the candidate queries;
    scores: [K] their phrase scores; a mask is probs > mask_threshold. gap_px / min_fraction: `split_mask`
    (gap_px < 0: masks stay whole). colours + term: the image's ColourNamer and the phrase's basic colour term
    (either None: no colour factor). Empty masks give no candidate.
    """
    h, w = probs.shape[1:] if probs.ndim == 3 else (0, 0)
    rows, pieces, conf = mask_pieces(probs, mask_threshold, gap_px, min_fraction)
    factors = []
    for k, piece, c in zip(rows, pieces, conf):
        col = 1.0
        if colour_power and colours is not None and term is not None:
            col = max(colours.term_probability(piece, term), COLOUR_FLOOR)
        factors.append((float(scores[k]), c, col))
    f = np.asarray(factors, np.float64).reshape(-1, 3)
    rank = f[:, 0] * f[:, 1] ** confidence_power * f[:, 2] ** colour_power
    kept: list[int] = []
    for i in np.argsort(-rank, kind="stable"):
        if all(mask_iou(pieces[i], pieces[j]) <= 0.5 for j in kept):
            kept.append(int(i))
    return RankedPieces(rows=np.asarray(rows, np.int64)[kept],
                        masks=np.stack([pieces[i] for i in kept]) if kept else np.zeros((0, h, w), bool),
                        rank=rank[kept], score=f[kept, 0], confidence=f[kept, 1], colour=f[kept, 2])


__all__ = ["RankedPieces", "rank_pieces", "COLOUR_FLOOR"]
