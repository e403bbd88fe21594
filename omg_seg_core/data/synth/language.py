"""Referring phrases for the things of one frame ("the red box", "small blue ball", "the leftmost green cylinder").

A phrase identifies its object among the things VISIBLE in the same frame whenever attributes or position can:
colour + shape first, the size word added when colour + shape is shared, and a left-to-right position word when
even size does not separate them (two identical objects). Templates and shape synonyms vary with the caller's
random generator, so the same frame always gets the same phrases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .world import SYNONYMS

#: Phrase templates; "{d}" is the descriptor ("small red box"). Kept short: the node's text queries look the same.
TEMPLATES: tuple[str, ...] = ("the {d}", "{d}", "the {d}", "{d}")
_ORDINALS = ("leftmost", "second from the left", "third from the left", "fourth from the left")


@dataclass
class ThingRef:
    """What the phrase generator needs to know about one visible thing."""

    colour: str
    shape: str
    size: str
    cx: float  # x of the mask centroid in pixels (for left/right disambiguation)


@dataclass
class Phrase:
    text: str
    canonical: str   # "the small red box" style, canonical shape name, always with the article
    unique: bool     # True when the phrase singles out this object among the frame's visible things


def _position_word(rank: int, n: int) -> str:
    if n == 2:
        return ("left", "right")[rank]
    if rank == n - 1:
        return "rightmost"
    return _ORDINALS[rank] if rank < len(_ORDINALS) else f"number {rank + 1} from the left"


def referring_phrases(things: list[ThingRef], rng: np.random.Generator, synonym_prob: float = 0.2,
                      extra_size_prob: float = 0.3) -> list[Phrase]:
    """One `Phrase` per entry of ``things`` (same order)."""
    out: list[Phrase] = []
    for t in things:
        same_cs = [o for o in things if (o.colour, o.shape) == (t.colour, t.shape)]
        same_all = [o for o in same_cs if o.size == t.size]
        words: list[str] = []
        unique = True
        if len(same_cs) == 1:
            # already unique: sometimes add the size anyway so size words are seen on unambiguous objects too
            if rng.random() < extra_size_prob:
                words.append(t.size)
        elif len(same_all) == 1:
            words.append(t.size)
        else:
            order = sorted(same_all, key=lambda o: o.cx)
            rank = next(i for i, o in enumerate(order) if o is t)
            words += [_position_word(rank, len(order)), t.size]
            # equal centroids cannot be told apart by position
            unique = len({round(o.cx, 1) for o in order}) == len(order)
        shape_word = t.shape
        if rng.random() < synonym_prob and len(SYNONYMS[t.shape]) > 1:
            shape_word = SYNONYMS[t.shape][int(rng.integers(1, len(SYNONYMS[t.shape])))]
        canonical = " ".join(["the"] + words + [t.colour, t.shape])
        desc = " ".join(words + [t.colour, shape_word])
        text = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(d=desc)
        out.append(Phrase(text, canonical, unique))
    return out


def stuff_phrase(name: str) -> str:
    return f"the {name}"
