"""`VideoSession`: the per-frame video loop, written once (the node, `omg-seg-eval-video` and the bag evaluation
all run frames through it).

    session = VideoSession(build_predictor("tiny"), Tracker(cfg), TargetManager(cfg))
    frame = session.step(rgb, stamp)             # set_image -> task -> tracker -> recover_missed -> targets
    seg, ids = session.text("segment the red box", track=True)   # on the cached frame; follow it from now on
    frame = session.step(next_rgb, next_stamp)   # frame.targets: where the red box is now

Order of one `step` (sam2's video predictor keeps its per-video state explicit the same way):
1. `predictor.set_image(rgb)` (the backbone pass, features cached) and the per-frame task (`panoptic`, `instances`
   or `semantic`) -> Segments;
2. `track(segments)`: `Tracker.update` gives things stable ids; `recover_missed` re-finds confirmed tracks this
   frame's segments missed, on the SAME cached features; `TargetManager.update` re-finds the persistent targets
   (prompt/text results registered with `track=True`). Without a tracker, things get per-frame ids 1..N.

3. with a `DepthFrame` (depth registered to the frame + intrinsics, spatial/): every segment and target gets its 3D
   answer (`Segments.boxes_3d`, camera optical frame, metres); requests on that frame get it too.

Requests (`prompt`, `text`) run on the cached features of the latest frame, or on their own `image`. Every call
holds `lock` (an RLock), so a request never interleaves with a frame. Errors: ValueError for a bad request,
`NoFrameError` (a RuntimeError) for a request before any frame. Stamps are seconds.

Several cameras on one model: `multi_camera.CameraSessions` gives each camera a VideoSession on its own predictor
view (predict/batch.py) and runs their frames through the image graph as one batch, then `finish_frame` each.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .predict.exemplar import label_exemplars, make_exemplar
from .spatial import DepthConfig, DepthFrame, segment_boxes_3d
from .structures import Segments, mask_iou

#: The per-frame tasks a session can run.
TASKS = ("panoptic", "instances", "semantic")


class NoFrameError(RuntimeError):
    """A request needs an image, but no frame has been processed and the request brought none."""


@dataclass
class FrameResult:
    """One frame through the session."""

    segments: Segments                 # the task's result; things carry track ids (recovered objects appended)
    targets: Optional[Segments]        # one row per persistent target (None when none is registered)
    frame_index: int
    stamp: Optional[float]             # seconds (the image header's stamp)
    model_ms: float                    # wall time of the whole step: model + post-processing + tracking
    timings: dict = field(default_factory=dict)  # ms per stage: the predictor's + tracker, recovery, targets


class VideoSession:
    """predictor + tracker + persistent targets for ONE camera (module docstring).

    predictor: an OMGSegPredictor (or anything with its set_image / task / prompt / text / vocabulary calls).
    tracker / targets: a `Tracker` and a `TargetManager`, or None (tracking off: per-frame ids, no targets).
    task: the per-frame task, one of TASKS.
    """

    def __init__(self, predictor: Any, tracker: Any = None, targets: Any = None, task: str = "panoptic",
                 depth_config: Optional[DepthConfig] = None, lock: Optional[threading.RLock] = None) -> None:
        self.predictor = predictor
        self.depth_config = depth_config or DepthConfig()
        self.latest_depth: Optional[DepthFrame] = None  # the depth of the latest frame (None: 2D only)
        self.tracker = tracker
        self.targets = targets
        self.task = task
        self.lock = lock if lock is not None else threading.RLock()  # shared by the cameras of one model
        self.frame_index = -1
        self.latest: Optional[Segments] = None       # tracked segments of the latest frame
        self.latest_stamp: Optional[float] = None
        self.image_size: Optional[tuple[int, int]] = None  # (H, W) of the image the cached features belong to
        self.image_passes = 0                         # set_image calls (backbone passes), frames and requests
        self._features_from_request = False           # cached features belong to a request's image
        self.latest_targets: Optional[Segments] = None  # the targets found on the latest frame
        self.exemplar_targets: dict[str, int] = {}     # taught name -> the target following its example

    @property
    def task(self) -> str:
        return self._task

    @task.setter
    def task(self, task: str) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got '{task}'")
        self._task = task

    # ------------------------------------------------------------------------------------------ frames
    def step(self, rgb: np.ndarray, stamp: Optional[float] = None, frame_index: Optional[int] = None,
             depth: Optional[DepthFrame] = None) -> FrameResult:
        """Run the task on one frame (RGB uint8 [H, W, 3]), track it and re-find the targets; with `depth` (metres
        at the frame's H x W, see spatial.match_depth_size) every segment and target gets `boxes_3d`."""
        check_depth(rgb, depth)
        with self.lock:
            t0 = time.perf_counter()
            self._set_image(rgb)
            return self.finish_frame(t0, stamp, frame_index, depth)

    def finish_frame(self, t0: float, stamp: Optional[float] = None, frame_index: Optional[int] = None,
                     depth: Optional[DepthFrame] = None) -> FrameResult:
        """The rest of `step` once the predictor holds the frame (`step`, or one batched pass for several cameras:
        `multi_camera.CameraSessions.step`, which calls `frame_image_set` first): task -> tracking -> 3D.
        `t0`: time.perf_counter() the frame's model time counts from."""
        with self.lock:
            self._features_from_request = False
            t1 = time.perf_counter()
            seg = getattr(self.predictor, self.task)()
            if len(self.predictor.exemplars) and self.task != "semantic":
                label_exemplars(self.predictor, seg)
            timings = dict(getattr(self.predictor, "last_timings", {}) or {})
            timings["task"] = (time.perf_counter() - t1) * 1e3  # the task's post-processing, wall time
            result = self.track(seg, stamp, frame_index, resegmenter=self.predictor)
            self.latest_depth = depth
            if depth is not None:
                t2 = time.perf_counter()
                self.add_3d(result.segments)
                if result.targets is not None:
                    self.add_3d(result.targets)
                result.timings["depth"] = (time.perf_counter() - t2) * 1e3
            result.timings = {**timings, **result.timings}
            result.model_ms = (time.perf_counter() - t0) * 1e3
            return result

    def track(self, segments: Segments, stamp: Optional[float] = None, frame_index: Optional[int] = None,
              resegmenter: Any = None) -> FrameResult:
        """The tracking half of `step` for segments of one frame: tracker -> recovery -> targets.
        `resegmenter`: a predictor holding THIS frame's features (recovery and target prompts use it), or None
        (segments from elsewhere, e.g. a recorded or simulated detector)."""
        with self.lock:
            t0 = time.perf_counter()
            timings: dict[str, float] = {}
            self.frame_index = self.frame_index + 1 if frame_index is None else int(frame_index)
            seg = segments
            if self.tracker is not None:
                seg = self.tracker.update(seg, frame_index=self.frame_index, stamp=stamp)
                t1 = time.perf_counter()
                timings["tracker"] = (t1 - t0) * 1e3
                if resegmenter is not None:
                    from .tracking import recover_missed

                    seg = recover_missed(self.tracker, seg, resegmenter)
                timings["recovery"] = (time.perf_counter() - t1) * 1e3
            else:
                seg = _index_ids(seg)
            found = None
            if self.targets is not None and len(self.targets):
                t2 = time.perf_counter()
                found = self.targets.update(seg, predictor=resegmenter, frame_index=self.frame_index, stamp=stamp,
                                            image_size=seg.image_size)
                timings["targets"] = (time.perf_counter() - t2) * 1e3
            self.latest, self.latest_stamp, self.latest_targets = seg, stamp, found
            self.image_size = seg.image_size
            return FrameResult(seg, found, self.frame_index, stamp, (time.perf_counter() - t0) * 1e3, timings)

    # ------------------------------------------------------------------------------------------ requests
    def prompt(self, points: Any = None, point_labels: Any = None, boxes: Any = None, *,
               image: Optional[np.ndarray] = None, track: bool = False, label: str = "prompt",
               stamp: Optional[float] = None) -> tuple[Segments, list[int]]:
        """Point/box prompts (original-image pixels; predict/preprocess.validate_prompts) on the latest frame or
        on `image` -> (Segments one per positive prompt, target ids registered when `track`)."""
        with self.lock:
            self._use_image(image)
            seg = self.predictor.prompt(points=points, point_labels=point_labels, boxes=boxes)
            self._answer_3d(seg)
            return seg, (self.follow(seg, label, stamp) if track else [])

    def text(self, query: str, max_results: Optional[int] = None, *, image: Optional[np.ndarray] = None,
             track: bool = False, stamp: Optional[float] = None, hint_points: Any = None, hint_labels: Any = None,
             hint_boxes: Any = None) -> tuple[Segments, list[int]]:
        """Open-vocabulary text request on the latest frame or on `image` -> (Segments best first, target ids
        registered when `track`). hint_*: where the object is (OMGSegPredictor.text)."""
        with self.lock:
            self._use_image(image)
            seg = self.predictor.text(query, max_results=max_results, hint_points=hint_points,
                                      hint_labels=hint_labels, hint_boxes=hint_boxes)
            if hint_points is None and hint_boxes is None:
                seg = self._prefer_target(seg, max_results)
            self._answer_3d(seg)
            return seg, (self.follow(seg, query, stamp) if track else [])

    def follow(self, seg: Segments, label: str, stamp: Optional[float] = None) -> list[int]:
        """Register every non-empty row of a prompt/text result as a persistent target; sets `seg.track_ids` to
        the target ids (0 for an empty row) and returns the ids."""
        if self.targets is None:
            raise ValueError("track=true needs tracking (parameter tracking.enabled) and the target manager")
        with self.lock:
            frame_seg = None if self._features_from_request else self.latest
            when = stamp if stamp is not None else self.latest_stamp
            ids = np.zeros(len(seg), np.int64)
            for i in range(len(seg)):
                if seg.masks[i].any():  # an empty result cannot be followed
                    ids[i] = self.targets.register(seg, i, label=label, frame_segments=frame_seg, stamp=when)
            seg.track_ids = ids
            return [int(t) for t in ids if t > 0]

    def remove_target(self, target_id: int) -> bool:
        """Forget target `target_id` (0 = every target); False when there was none to remove."""
        if self.targets is None:
            raise ValueError("targets are not enabled (parameter tracking.enabled)")
        with self.lock:
            if int(target_id) == 0:
                return self.targets.clear() > 0
            return self.targets.remove(int(target_id))

    def reset_tracks(self, reason: str = "reset requested") -> int:
        """Forget every track and target; returns how many targets were removed."""
        with self.lock:
            n = len(self.targets) if self.targets is not None else 0
            if self.tracker is not None:
                self.tracker.reset(reason)
            if self.targets is not None:
                self.targets.clear()
            return n

    # ------------------------------------------------------------------------------------------ exemplars
    def add_exemplar(self, name: str, points: Any = None, point_labels: Any = None, boxes: Any = None,
                     mask: Any = None, *, image: Optional[np.ndarray] = None, track: bool = False,
                     stamp: Optional[float] = None) -> tuple[int, Segments, list[int]]:
        """Teach `name` by one example object (a click, a box or a mask; OMGSegPredictor.example) on the latest
        frame or on `image` -> (views of the name now, the example as one segment, [target id] when `track`).
        A tracked name's text request ("my mug") answers with its target first while the target is in view."""
        with self.lock:
            self._use_image(image)
            seg = self.predictor.example(points, point_labels, boxes, mask)
            ex = make_exemplar(self.predictor, seg.masks[0], source=seg.extra["source"])
            views = self.predictor.exemplars.add(name, ex)
            seg.class_names = [ex.name]
            self._answer_3d(seg)
            ids = self.follow(seg, ex.name, stamp) if track else []
            if ids:
                self.exemplar_targets[ex.name] = ids[0]
            return views, seg, ids

    def like(self, points: Any = None, point_labels: Any = None, boxes: Any = None, mask: Any = None, *,
             name: str = "", example_image: Optional[np.ndarray] = None, threshold: Optional[float] = None,
             max_results: Optional[int] = None, track: bool = False, stamp: Optional[float] = None
             ) -> tuple[Segments, list[int]]:
        """Every object in the latest frame (or the latest request image, as for `prompt`) like an example (a click /
        box / mask on that image, or on `example_image`) or like the taught `name` -> (Segments best first, target
        ids when `track`)."""
        with self.lock:
            if self.image_size is None:
                raise NoFrameError("no frame yet: ~/segment_like answers on the latest frame")
            given = any(v is not None for v in (points, boxes, mask))
            if name and given:
                raise ValueError("give an example OR a taught name, not both")
            if name:
                exemplars, label = self.predictor.exemplars.views(name), ""
            elif not given:
                raise ValueError("no example: give a click, a box, a mask or a taught name")
            else:
                back = (self._features_from_request, self.latest_depth, self.image_size)
                try:  # the example's own image, then back to the cached features the answer is on
                    with self.predictor.keep_image():
                        if example_image is not None:
                            self._use_image(example_image)
                        seg = self.predictor.example(points, point_labels, boxes, mask)
                        exemplars = [make_exemplar(self.predictor, seg.masks[0], source=seg.extra["source"])]
                finally:
                    self._features_from_request, self.latest_depth, self.image_size = back
                label = "like"
            out = self.predictor.like(exemplars, threshold=threshold, max_results=max_results, label=label)
            self._answer_3d(out)
            return out, (self.follow(out, out.class_names[0] if len(out) else "like", stamp) if track else [])

    def remove_exemplar(self, name: str = "") -> int:
        """Forget the taught `name` ('' = every name); returns how many (KeyError listing the names if unknown).
        Targets that follow a removed name's example keep running (remove_target stops them)."""
        with self.lock:
            n = self.predictor.exemplars.remove(name)
            self.forget_exemplar_targets()
            return n

    def save_exemplars(self, path: str) -> int:
        """Write the taught exemplars to `path` (.npz; predict/exemplar_book.py); returns the views written."""
        with self.lock:
            return self.predictor.exemplars.save(path, model=self.predictor.cfg.name)

    def load_exemplars(self, path: str) -> int:
        """Replace the taught exemplars by the file's (made by a model of this one's sizes); returns the views."""
        with self.lock:
            n = self.predictor.load_exemplars(path)
            self.forget_exemplar_targets(everything=True)
            return n

    def forget_exemplar_targets(self, everything: bool = False) -> None:
        """Stop preferring targets of names no longer taught (`everything`: of every name, after a load). The
        targets themselves keep running (remove_target stops them)."""
        with self.lock:
            book = self.predictor.exemplars
            self.exemplar_targets = {} if everything else {k: v for k, v in self.exemplar_targets.items() if k in book}

    def _prefer_target(self, seg: Segments, max_results: Optional[int]) -> Segments:
        """A text answer naming a taught, tracked exemplar: its target's mask first (while it is in view on the
        latest frame), then the other matches that do not overlap it."""
        name = seg.extra.get("exemplar")
        tid = self.exemplar_targets.get(name) if name else None
        t = self.latest_targets
        if tid is None or t is None or self._features_from_request:
            return seg
        rows = np.flatnonzero((t.track_ids == tid) & t.masks.reshape(len(t), -1).any(1))
        if not rows.size:
            return seg
        mine = t[rows[:1]]
        mine.class_ids, mine.class_names, mine.task = np.array([-1]), [name], "text"
        mine.query_index = np.array([-1])
        others = [i for i in range(len(seg)) if mask_iou(seg.masks[i], mine.masks[0]) < 0.5]
        n = self.predictor.thresholds.text_max_results if max_results is None else int(max_results)
        out = Segments.cat([mine, seg[others]])[:n]
        out.extra = {**seg.extra, "target": int(tid)}
        out.extra.pop("similarity", None)
        out.extra.pop("exemplar_view", None)
        return out

    # ------------------------------------------------------------------------------------------ configuration
    def set_vocabulary(self, things: Any, stuff: Sequence[str] = (), max_classes: Optional[int] = None,
                       cancel: Optional[threading.Event] = None) -> int:
        """Replace the vocabulary (names, or a YAML path / vocabulary name as `things`); returns the number of
        classes. The text embeddings are computed WITHOUT the session lock (frames and requests go on with the old
        vocabulary meanwhile), then swapped in at once; tracks are reset (class ids change meaning). max_classes /
        cancel: see OMGSegPredictor.vocabulary_embeddings."""
        return swap_vocabulary(self.predictor, self.lock, [self.tracker], things, stuff, max_classes, cancel)

    @property
    def class_names(self) -> list[str]:
        """Display names of the active vocabulary (things then stuff), class id order."""
        return list(self.predictor.class_names)

    def set_thresholds(self, **kw: Any) -> None:
        with self.lock:
            self.predictor.set_thresholds(**kw)

    def set_tracker_config(self, cfg: Any) -> None:
        """A new TrackerConfig for the tracker and the targets (validated by them)."""
        with self.lock:
            if self.tracker is not None:
                self.tracker.config = cfg
            if self.targets is not None:
                self.targets.config = cfg

    def add_3d(self, seg: Segments, depth: Optional[DepthFrame] = None) -> Segments:
        """Fill `seg.boxes_3d` from `depth` (default: the latest frame's); unchanged without depth."""
        depth = depth or self.latest_depth
        if depth is not None and seg.image_size == depth.depth_m.shape:
            seg.boxes_3d = segment_boxes_3d(seg, depth.depth_m, depth.camera, self.depth_config)
        return seg

    def _answer_3d(self, seg: Segments) -> None:
        """A request answered on the latest frame's features gets that frame's 3D (a request image has no depth)."""
        if not self._features_from_request:
            self.add_3d(seg)

    # ------------------------------------------------------------------------------------------ internals
    def _set_image(self, rgb: np.ndarray) -> None:
        self.predictor.set_image(rgb)
        self.frame_image_set(rgb.shape)

    def frame_image_set(self, shape: Sequence[int]) -> None:
        """Book-keeping after the predictor was given an image of `shape` (H, W, 3): one more backbone pass of this
        camera, the size the cached features belong to (`_set_image`, or a batched pass of several cameras)."""
        self.image_passes += 1
        self.image_size = (int(shape[0]), int(shape[1]))

    def _use_image(self, image: Optional[np.ndarray]) -> None:
        """Select the image a request runs on: its own (a backbone pass) or the latest frame's cached features."""
        if image is not None:
            self._set_image(image)
            self._features_from_request = True
            self.latest_depth = None  # the next frame brings its own
        elif self.image_size is None:
            raise NoFrameError("no frame yet: process a frame first or send an image with the request")


def swap_vocabulary(predictor: Any, lock: threading.RLock, trackers: Sequence[Any], things: Any,
                    stuff: Sequence[str] = (), max_classes: Optional[int] = None,
                    cancel: Optional[threading.Event] = None) -> int:
    """The vocabulary change of one or several sessions on ONE predictor: the text embeddings are computed WITHOUT
    `lock` (frames and requests go on with the old vocabulary), swapped in at once holding it, and every tracker
    reset (class ids change meaning). Returns the number of classes."""
    vocab, emb = predictor.vocabulary_embeddings(things, stuff, max_classes=max_classes, cancel=cancel)
    with lock:
        predictor.set_vocabulary(vocab, embeddings=emb)
        for tracker in trackers:
            if tracker is not None:
                tracker.reset("vocabulary changed")
        return vocab.num_classes


def check_depth(rgb: np.ndarray, depth: Optional[DepthFrame]) -> None:
    """ValueError unless `depth` (if any) has the frame's H x W."""
    if depth is not None and depth.depth_m.shape != rgb.shape[:2]:
        raise ValueError(f"depth {depth.depth_m.shape} must match the image {rgb.shape[:2]}")


def _index_ids(seg: Segments) -> Segments:
    """Without a tracker: things get per-frame ids 1..N so an instance image matches the detections."""
    ids = np.zeros(len(seg), np.int64)
    things = np.flatnonzero(seg.is_thing)
    ids[things] = np.arange(1, len(things) + 1)
    seg.track_ids = ids
    return seg


__all__ = ["VideoSession", "FrameResult", "NoFrameError", "TASKS", "check_depth", "swap_vocabulary"]
