"""Position words in text requests: "the left mug", "the rightmost red box", "the second cup from the left".

A robot's user singles out one of several look-alike objects by where it is; a small text tower does not learn
that reliably (held-out positional phrases: 0.35-0.50 top-1 from the embedding alone, models/MODEL_CARD.md). So
`text()` resolves the position geometrically: `split_position` takes the position words out of the phrase, the
rest ("red box") is scored as usual, and `pick_by_position` orders the matching candidates by the x of their mask
centroids (image columns, left to right) and returns the one at the requested rank.

Recognised forms (after `extract_phrase`): a leading `left`, `right`, `leftmost`, `rightmost`; a trailing
`on the left` / `on the right`; an ordinal (`first` .. `fifth`, `1st` .. `5th`, or `number N`) anywhere with
`from the left` / `from the right` anywhere ("second from the left red box", "second red box from the left").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .text_candidates import RankedPieces

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
             "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}
_EDGE = {"left": "left", "leftmost": "left", "right": "right", "rightmost": "right"}


@dataclass(frozen=True)
class Position:
    """Counted from `side` ("left" | "right"); rank 0 = the outermost object on that side."""

    side: str
    rank: int


def split_position(phrase: str) -> tuple[str, Optional[Position]]:
    """("second from the left red box") -> ("red box", Position("left", 1)); phrases without position words come
    back unchanged with None. A phrase that is only position words is returned unchanged (nothing to look for)."""
    words = phrase.split()
    side: Optional[str] = None
    rank = 0
    for i in range(len(words) - 2):
        if words[i] in ("from", "on") and words[i + 1] == "the" and words[i + 2] in ("left", "right"):
            side = words[i + 2]
            words = words[:i] + words[i + 3:]
            break
    for i, w in enumerate(words):
        if w in _ORDINALS:
            rank = _ORDINALS[w] - 1
            words = words[:i] + words[i + 1:]
            break
        if w == "number" and i + 1 < len(words) and words[i + 1].isdigit() and int(words[i + 1]) >= 1:
            rank = int(words[i + 1]) - 1
            words = words[:i] + words[i + 2:]
            break
    if side is None and words and words[0] in _EDGE:
        side, rank, words = _EDGE[words[0]], 0, words[1:]
    if side is None or not words:
        return phrase, None
    return " ".join(words), Position(side, rank)


def pick_by_position(masks: np.ndarray, position: Position) -> Optional[int]:
    """Index of the candidate at `position` among masks bool [K, H, W] (ordered by mask-centroid x; ties keep
    their order), or None when there are not enough candidates (or a candidate mask is empty)."""
    if masks.shape[0] <= position.rank:
        return None
    cols = np.arange(masks.shape[2], dtype=np.float64)
    area = masks.sum((1, 2)).astype(np.float64)
    if (area == 0).any():
        return None
    cx = (masks.sum(1) * cols).sum(1) / area                     # [K] centroid x in pixels
    order = np.argsort(cx if position.side == "left" else -cx, kind="stable")
    return int(order[position.rank])


def pick_candidate(ranked: RankedPieces, position: Position, rel: float) -> Optional[int]:
    """The object at `position` among the matches of the described object.

    ranked: the matches' pieces, best first (candidates.rank_pieces: one query may cover two look-alikes, so
    masks are cut at their gaps and deduplicated). Candidates are the pieces ranking >= rel x the best.
    Returns the index into `ranked` of the picked piece, or None when fewer candidates than the rank asks for.
    """
    if len(ranked) == 0:
        return None
    cand = np.flatnonzero(ranked.rank >= rel * ranked.rank[0])
    k = pick_by_position(ranked.masks[cand], position)
    return None if k is None else int(cand[k])


__all__ = ["Position", "split_position", "pick_by_position", "pick_candidate"]
