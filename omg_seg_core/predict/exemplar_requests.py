"""The predictor's exemplar requests (a mixin of OMGSegPredictor): `example`, `exemplar`, `like`, and the answer
to a text request that names a taught exemplar ("segment my mug"). How exemplars are described and compared:
exemplar.py; names, files: exemplar_book.py."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from ..structures import Segments
from .exemplar import Exemplar, like, make_exemplar


class ExemplarRequests:
    """Needs the predictor's `_require`, `prompt`, `thresholds`, `exemplars` (ExemplarBook), `cfg` and `timed`."""

    def load_exemplars(self, path: str) -> int:
        """Replace the taught exemplars by the file's (ExemplarBook.load, checked against this model's query and
        class embedding sizes); returns the views loaded."""
        return self.exemplars.load(path, query_dim=self.cfg.embed_dim, class_dim=self.cfg.class_embed_dim)

    def example(self, points: Any = None, point_labels: Any = None, boxes: Any = None, mask: Any = None) -> Segments:
        """ONE example object on the cached image as a one-row Segments: given by a click or a box (points [P, 2] xy,
        point_labels [P], boxes [1, 4] xyxy, original pixels; the first positive prompt's answer, as `prompt`
        gives it) or by bool `mask` [H0, W0] (extra["source"] says which). ValueError for an empty example."""
        _, meta = self._require()
        if mask is not None:
            if points is not None or boxes is not None:
                raise ValueError("give the example as a mask OR as points/boxes, not both")
            m = np.asarray(mask)
            if m.shape != tuple(meta.ori_shape):
                raise ValueError(f"example mask must be the image's size {tuple(meta.ori_shape)} (H, W), got {m.shape}")
            if not m.any():
                raise ValueError("example mask is empty: mark the example's pixels (non-zero)")
            seg = Segments(masks=m[None].astype(bool), scores=[1.0], class_ids=[-1], class_names=[""], is_thing=[True],
                           task="prompt")
            seg.extra["source"] = "mask"
            return seg
        if boxes is not None and np.asarray(boxes).size > 4:
            raise ValueError(f"an example is ONE object: give one box, got {np.asarray(boxes).size // 4}")
        seg = self.prompt(points=points, point_labels=point_labels, boxes=boxes)[:1]
        if not len(seg) or not seg.masks[0].any():
            raise ValueError("the example prompt found no object (empty mask): click on the object itself")
        if seg.extra["prompt_kind"][0] == "point":
            x, y = np.asarray(points, np.float64).reshape(-1, 2)[0]
            seg.extra["source"] = f"click at ({x:.0f}, {y:.0f})"
        else:
            seg.extra["source"] = "box " + " ".join(f"{v:.0f}" for v in np.asarray(boxes, np.float64).reshape(4))
        return seg

    def exemplar(self, points: Any = None, point_labels: Any = None, boxes: Any = None, mask: Any = None,
                 name: str = "") -> Exemplar:
        """The `Exemplar` (predict/exemplar.py) of the example object `example(...)` finds on the cached image."""
        seg = self.example(points, point_labels, boxes, mask)
        with self.timed("exemplar"):
            return make_exemplar(self, seg.masks[0], name=name, source=seg.extra["source"])

    def like(self, exemplars: Union[Exemplar, Sequence[Exemplar]], threshold: Optional[float] = None,
             max_results: Optional[int] = None, label: str = "") -> Segments:
        """Every object on the cached image like the exemplar(s) (predict/exemplar.py), best first: similarity >=
        `threshold` (default thresholds.like_threshold), at most `max_results` (default thresholds.like_max_results);
        scores = similarity in [0, 1]; class_names `label` or the exemplar's name; extra["similarity"] per part."""
        exs = [exemplars] if isinstance(exemplars, Exemplar) else list(exemplars)
        th = self.thresholds
        t = th.like_threshold if threshold is None else float(threshold)
        n = th.like_max_results if max_results is None else max_results
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"max_results must be a positive integer, got {max_results!r}")
        if not (isinstance(t, float) and 0.0 <= t <= 1.0):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        self._require()
        with self.timed("like"):
            return like(self, exs, t, int(n), label=label)

    def _named(self, query: str, name: str, max_results: Optional[int], hint: Any) -> Segments:
        """A text request naming a taught exemplar: `like` its views (thresholds.like_threshold), best first,
        re-ranked by the spatial hint when one is given; at most max_results (default text_max_results)."""
        from .text_hint import hint_factor

        n = int(self.thresholds.text_max_results if max_results is None else max_results)
        # a hint may re-rank: it chooses among like's usual number of results; without one, like's first n are the
        # answer (its choice is greedy, best first), so no more are made or refined
        fetch = max(n, self.thresholds.like_max_results) if hint is not None else n
        seg = self.like(self.exemplars.views(name), max_results=fetch, label=name)
        order = np.arange(len(seg))
        if hint is not None and len(seg):
            fit = hint_factor(seg.masks, hint, self.thresholds.text_hint_scale_px)
            order = np.argsort(-(seg.scores * fit), kind="stable")[:n]
            seg.extra["hint"] = {"used": hint.describe(), "fit": [float(f) for f in fit[order]]}
        order = order[:n]
        extra = seg.extra
        seg = seg[order]  # per-row extras re-indexed with the rows
        seg.extra = {**extra, "similarity": {k: v[order] for k, v in extra["similarity"].items()},
                     "exemplar_view": extra["exemplar_view"][order]}
        seg.task = "text"
        seg.extra.update(query=query, phrase=name, exemplar=name)  # "exemplar": the name here
        return seg


__all__ = ["ExemplarRequests"]
