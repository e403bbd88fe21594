"""What tracking needs from a predictor: the `Resegmenter` protocol.

`recover_missed` and `TargetManager.update` look again at THIS frame through the predictor's cached image features
(cheap: no second backbone pass). They need only these two calls, so tracking depends on this declared interface,
not on the predictor module (`omg_seg_core.predict.OMGSegPredictor` satisfies it; tests may pass anything that
does).
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from ..structures import Segments


@runtime_checkable
class Resegmenter(Protocol):
    """A predictor holding the features of the frame being tracked (its `set_image` was called for it)."""

    def instances(self, min_score: Optional[float] = None, near: Optional[np.ndarray] = None) -> Segments:
        """Instance results of the cached frame, best first; `min_score` drops lower ones, `near` (boxes [K, 4]
        xyxy pixels) keeps queries whose mask reaches into one of them."""
        ...

    def prompt(self, points: Optional[Any] = None, point_labels: Optional[Any] = None,
               boxes: Optional[Any] = None) -> Segments:
        """One mask per positive prompt (points [P, 2] xy, boxes [B, 4] xyxy, pixels) on the cached frame."""
        ...


__all__ = ["Resegmenter"]
