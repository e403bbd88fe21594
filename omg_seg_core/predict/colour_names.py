"""How well a mask's pixels fit a colour word ("the RED box"), from human colour naming data.

The query embeddings of a small model separate colours poorly (a blue box and a white box score close for "the
blue box"), yet colour is what people use most to single out an object. `ColourNamer` answers P(term | pixel) for
the eleven basic colour terms of English (Berlin & Kay 1969: black, white, red, green, yellow, blue, brown, purple,
pink, orange, grey), estimated from the XKCD colour survey (~950 colour names people gave to screen colours,
shipped with matplotlib as `matplotlib.colors.XKCD_COLORS`): every survey name whose last word is a basic term is a
*shade* of that term ("dark red", "blue green" -> green, "reddish brown" -> brown; 558 shades). For a pixel,
each term's distance is the CIELAB distance (delta E 1976) to that term's nearest shade, and
P(term | pixel) = softmax(-distance / temperature) over the terms. A mask's fit to a term is the mean over its pixels.

This is not learned from our synthetic scenes: the same table serves camera images (it inherits the survey's
limits: sRGB screen colours, no white balance, one table per pixel colour). P(term | pixel) is tabulated once
per temperature on a 32x32x32 grid of 8-bit RGB (bin centres), so a mask costs one lookup per pixel.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

import cv2
import numpy as np

#: The basic colour terms (Berlin & Kay) in table order.
BASIC_COLOUR_TERMS: tuple[str, ...] = ("black", "white", "red", "green", "yellow", "blue", "brown", "purple", "pink",
                                       "orange", "grey")
#: Other spellings / near-synonyms of a basic term as users type them.
COLOUR_SYNONYMS: dict[str, str] = {"gray": "grey", "violet": "purple"}
_BINS = 32  # per RGB channel; bin width 8
#: Softness of the naming in delta-E units (1.5-8 give the same referring accuracy, docs/predictor.md).
TEMPERATURE = 3.0


def colour_term(phrase: str) -> Optional[str]:
    """The first basic colour term in `phrase` ("small gray mug" -> "grey"), or None when it names no colour."""
    for word in re.findall(r"[a-z]+", phrase.lower()):
        word = COLOUR_SYNONYMS.get(word, word)
        if word in BASIC_COLOUR_TERMS:
            return word
    return None


def _survey_shades() -> tuple[np.ndarray, np.ndarray]:
    """(term index int [S], CIELAB float32 [S, 3]) of the XKCD survey names that end in a basic term."""
    import matplotlib.colors as mcolors

    terms, rgb = [], []
    for name, hexcode in mcolors.XKCD_COLORS.items():
        head = name.removeprefix("xkcd:").split()[-1]
        head = COLOUR_SYNONYMS.get(head, head)
        if head in BASIC_COLOUR_TERMS:
            terms.append(BASIC_COLOUR_TERMS.index(head))
            rgb.append(mcolors.to_rgb(hexcode))
    return np.asarray(terms), _lab(np.round(np.asarray(rgb) * 255).astype(np.uint8))


def _lab(rgb_u8: np.ndarray) -> np.ndarray:
    """float32 [N, 3] CIELAB (L 0..100, a/b about -128..127) of uint8 sRGB [N, 3] (D65)."""
    return cv2.cvtColor(rgb_u8.reshape(1, -1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0]


@lru_cache(maxsize=4)
def _term_table(temperature: float) -> np.ndarray:
    """float32 [32**3, T]: P(term | RGB bin), bins indexed r * 1024 + g * 32 + b."""
    term_of, shades = _survey_shades()
    centres = (np.arange(_BINS) * (256 // _BINS) + (256 // _BINS) // 2).astype(np.uint8)
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
    lab = _lab(grid)
    # squared distances [bins, shades] as |x|^2 + |y|^2 - 2 x.y (one matrix product; the plain difference
    # tensor would be 55 M floats), then the nearest shade of each term
    sq = (lab ** 2).sum(1)[:, None] + (shades ** 2).sum(1)[None, :] - 2.0 * lab @ shades.T
    dist = np.stack([sq[:, term_of == t].min(1) for t in range(len(BASIC_COLOUR_TERMS))], 1)
    dist = np.sqrt(np.maximum(dist, 0.0))
    logits = -(dist - dist.min(1, keepdims=True)) / temperature
    p = np.exp(logits)
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def warm_up(temperature: float = TEMPERATURE) -> None:
    """Build the colour table now (about 0.4 s, once per process) rather than on the first coloured request."""
    _term_table(float(temperature))


class ColourNamer:
    """P(colour term | mask) for one RGB image (module docstring).

    image: uint8 [H, W, 3] RGB; temperature: softness of the naming in delta-E units (3: a pixel 3 units nearer
    to one term's shades than to another's is e ~ 2.7 times as likely that term).
    """

    def __init__(self, image: np.ndarray, temperature: float = TEMPERATURE) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"ColourNamer needs a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
        if not temperature > 0:
            raise ValueError(f"colour naming temperature must be > 0, got {temperature!r}")
        self._table = _term_table(float(temperature))
        self._image = image

    def _bins(self, mask: np.ndarray) -> np.ndarray:
        """int [n] colour-table bin of each pixel of bool [H, W] `mask` (only the mask's pixels are read)."""
        q = (self._image[mask] >> 3).astype(np.int32)   # 256 / 32 = 8 levels per bin
        return (q[:, 0] * _BINS + q[:, 1]) * _BINS + q[:, 2]

    def term_probability(self, mask: np.ndarray, term: str) -> float:
        """Mean P(term | pixel) over the pixels of bool [H, W] `mask` (0 for an empty mask)."""
        t = BASIC_COLOUR_TERMS.index(COLOUR_SYNONYMS.get(term, term))
        bins = self._bins(mask)
        return float(self._table[bins, t].mean()) if bins.size else 0.0

    def distribution(self, mask: np.ndarray) -> np.ndarray:
        """float32 [len(BASIC_COLOUR_TERMS)]: mean P(term | pixel) over bool [H, W] `mask` (zeros when empty)."""
        bins = self._bins(mask)
        if not bins.size:
            return np.zeros(len(BASIC_COLOUR_TERMS), np.float32)
        return self._table[bins].mean(0)


__all__ = ["ColourNamer", "colour_term", "warm_up", "BASIC_COLOUR_TERMS", "COLOUR_SYNONYMS"]
