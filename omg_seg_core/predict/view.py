"""`PredictorView`: one camera's predictor on a shared `OMGSegPredictor` (several cameras, one model).

    views = [PredictorView(predictor) for _ in cameras]   # own cached image; shared model, backend, vocabulary
    set_images(views, [front_rgb, left_rgb])             # predict/batch.py: ONE image-graph call for both
    views[0].panoptic(); views[1].prompt(points=[[x, y]])

A view is an `OMGSegPredictor` whose per-image attributes (`OMGSegPredictor.IMAGE_STATE`: the cached features, image
meta, class logits, image and timings) are its own; every other attribute is read from and written to the predictor
it was made from (model, backend, vocabulary and text embeddings, thresholds, text tower, phrase cache). So
`set_vocabulary` or `set_thresholds` through any view or the base reaches every camera, and the class logits a view
caches are recomputed after a vocabulary change (they remember the embeddings they were made with). A new per-image
attribute of OMGSegPredictor must be listed in IMAGE_STATE, or the views would share it.
"""
from __future__ import annotations

from typing import Any

from .batch import base_of
from .predictor import OMGSegPredictor


class PredictorView(OMGSegPredictor):
    """A camera's predictor on a shared `base` (module docstring); a view of a view shares the same base."""

    def __init__(self, base: OMGSegPredictor) -> None:  # noqa: D107 - no OMGSegPredictor.__init__: nothing is built
        object.__setattr__(self, "_base", base_of(base))
        self.clear_image()  # IMAGE_STATE attributes are the view's own (__setattr__)

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes the view does not hold itself: the shared ones
        if name == "_base":
            raise AttributeError(name)
        return getattr(self._base, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in OMGSegPredictor.IMAGE_STATE:
            object.__setattr__(self, name, value)
        else:
            setattr(self._base, name, value)

    @property
    def base(self) -> OMGSegPredictor:
        """The predictor whose model, backend, vocabulary and thresholds this view shares."""
        return self._base


__all__ = ["PredictorView"]
