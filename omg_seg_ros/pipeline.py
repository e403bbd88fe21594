"""The node's ROS-free engine: one-slot frame mailbox, statistics, and the predictor + tracker + targets pipeline.

Kept free of rclpy so the threading and request validation can be reasoned about (and tested) on their own;
node.py only moves messages in and out.

Threading: the subscription callback `put`s frames into a `FrameMailbox` (never blocks, overwrites and counts
the stale frame); ONE worker thread `take`s the latest and calls `Pipeline.process`. Service handlers call
`Pipeline.prompt/text/...` from another thread; every predictor access holds `Pipeline.lock`, so a prompt
runs on the cached features of the latest processed frame and never interleaves with `set_image`.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from omg_seg_core.structures import Segments

TASKS = ("panoptic", "instances", "semantic")


class RequestError(ValueError):
    """A bad service request or a call the pipeline cannot serve now (message is sent back to the caller)."""


@dataclass
class Frame:
    """One input frame waiting for the worker."""

    msg: Any                 # sensor_msgs Image or CompressedImage (decoded by the worker, not the callback)
    header: Any              # std_msgs/Header of the input image (copied into every output)
    stamp_s: float           # header stamp in seconds
    received: float          # time.monotonic() when the callback stored it
    index: int               # running input counter (gaps = dropped frames)


class FrameMailbox:
    """A one-slot mailbox: `put` replaces the waiting frame (counted as dropped), `take` waits for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[Frame] = None
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item: Frame) -> bool:
        """Store `item`; returns True when it overwrote a frame the worker had not taken yet."""
        with self._cond:
            overwrote = self._item is not None
            if overwrote:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()
            return overwrote

    def take(self, timeout: float) -> Optional[Frame]:
        """The latest frame, or None after `timeout` seconds or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


class Stats:
    """Rolling pipeline statistics for diagnostics (bounded memory: fixed-size windows)."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.latency_ms: deque[float] = deque(maxlen=window)   # image stamp -> outputs published
        self.model_ms: deque[float] = deque(maxlen=window)     # set_image + task + tracking
        self.wait_ms: deque[float] = deque(maxlen=window)      # callback stored it -> worker took it
        self.overhead_ms: deque[float] = deque(maxlen=window)  # latency - model (transport in, wait, decode, publish)
        self.done_times: deque[float] = deque(maxlen=window)
        self.processed = 0
        self.errors = 0
        #: the last frame's values, so a client can pair them with that frame's stamp (benchmarks)
        self.last: dict[str, float] = {}

    def record(self, latency_ms: float, model_ms: float, wait_ms: float = 0.0, stamp_s: float = 0.0) -> None:
        with self._lock:
            self.last = {"stamp": stamp_s, "latency_ms": latency_ms, "model_ms": model_ms, "wait_ms": wait_ms}
            self.latency_ms.append(latency_ms)
            self.model_ms.append(model_ms)
            self.wait_ms.append(wait_ms)
            self.overhead_ms.append(latency_ms - model_ms)
            self.done_times.append(time.monotonic())
            self.processed += 1

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            lat = np.asarray(self.latency_ms, np.float64)
            mod = np.asarray(self.model_ms, np.float64)
            wait = np.asarray(self.wait_ms, np.float64)
            over = np.asarray(self.overhead_ms, np.float64)
            t = list(self.done_times)
            last = dict(self.last)
        rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else 0.0
        pct = (lambda a, q: float(np.percentile(a, q)) if a.size else float("nan"))
        return {"rate_hz": rate, "latency_p50_ms": pct(lat, 50), "latency_p95_ms": pct(lat, 95),
                "model_p50_ms": pct(mod, 50), "model_p95_ms": pct(mod, 95), "queue_wait_p50_ms": pct(wait, 50),
                "overhead_p50_ms": pct(over, 50), "overhead_p95_ms": pct(over, 95),
                "processed": self.processed, "errors": self.errors, "last": last}


@dataclass
class FrameResult:
    """What `Pipeline.process` hands back to the node for publishing."""

    segments: Segments
    targets: Optional[Segments]
    model_ms: float
    timings: dict = field(default_factory=dict)


def _finite_array(values, name: str, shape_last: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(values, np.float64)
    if arr.size and not np.all(np.isfinite(arr)):
        raise RequestError(f"{name} contains NaN or infinite values")
    if shape_last is not None:
        if arr.size % shape_last:
            raise RequestError(f"{name} must have a multiple of {shape_last} values, got {arr.size}")
        arr = arr.reshape(-1, shape_last)
    return arr


def validate_prompts(points_xy, labels, boxes_flat, image_size: tuple[int, int]):
    """Check prompt inputs against the image size; returns (points [P,2] | None, labels [P] | None, boxes [B,4] | None).

    Rejected: NaN/inf, points outside the image, labels not 0/1 or of another length, boxes with a
    length not a multiple of 4, inverted/empty boxes or boxes entirely outside the image, no prompt at all.
    """
    h, w = image_size
    pts = _finite_array(points_xy, "points", 2)
    box = _finite_array(boxes_flat, "boxes", 4)
    if len(pts) == 0 and len(box) == 0:
        raise RequestError("no prompt given: send at least one point or one box")
    lab = None
    if len(pts):
        out = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise RequestError(f"point {i} ({pts[i, 0]:g}, {pts[i, 1]:g}) is outside the {w}x{h} image")
        lab = np.ones(len(pts), np.int64) if len(labels) == 0 else np.asarray(labels, np.int64)
        if lab.shape != (len(pts),):
            raise RequestError(f"point_labels has {len(labels)} values for {len(pts)} points")
        if not np.isin(lab, (0, 1)).all():
            raise RequestError(f"point_labels must be 1 (foreground) or 0 (background), got {sorted(set(lab.tolist()))}")
    elif len(labels):
        raise RequestError(f"point_labels given ({len(labels)}) but no points")
    if len(box):
        bad = (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RequestError(f"box {i} {box[i].tolist()} is empty or inverted (need x1 < x2, y1 < y2)")
        outside = (box[:, 2] <= 0) | (box[:, 3] <= 0) | (box[:, 0] >= w) | (box[:, 1] >= h)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise RequestError(f"box {i} {box[i].tolist()} lies outside the {w}x{h} image")
        box = box.copy()
        box[:, [0, 2]] = box[:, [0, 2]].clip(0, w)
        box[:, [1, 3]] = box[:, [1, 3]].clip(0, h)
    return (pts.astype(np.float32) if len(pts) else None, lab,
            box.astype(np.float32) if len(box) else None)


class Pipeline:
    """predictor + tracker + persistent targets behind one lock (see module docstring).

    `tracker` and `targets` may be None (tracking disabled or not available); ids are then 1-based segment
    indices per frame for things so the instance image and detections stay consistent.
    """

    def __init__(self, predictor: Any, task: str = "panoptic", tracker: Any = None, targets: Any = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got '{task}'")
        self.predictor = predictor
        self.task = task
        self.tracker = tracker
        self.targets = targets
        self.lock = threading.RLock()
        self._frame_index = -1
        self._latest: Optional[Segments] = None   # tracked segments of the latest processed frame
        self._latest_stamp: Optional[float] = None
        self._image_size: Optional[tuple[int, int]] = None
        self._features_from_request = False       # cached features belong to a service image, not the stream
        #: set_image calls (backbone passes): requests without an image must not add to it (diagnostics).
        self.image_passes = 0

    # ------------------------------------------------------------------------------------------ frames
    def process(self, rgb: np.ndarray, stamp_s: Optional[float] = None, frame_index: Optional[int] = None) -> FrameResult:
        """Run the enabled task on one frame, track it and re-find targets."""
        with self.lock:
            t0 = time.perf_counter()
            self.predictor.set_image(rgb)
            self.image_passes += 1
            seg = getattr(self.predictor, self.task)()
            self._frame_index = self._frame_index + 1 if frame_index is None else int(frame_index)
            if self.tracker is not None:
                from omg_seg_core.tracking import recover_missed  # tracking is optional (loader.py)

                seg = self.tracker.update(seg, frame_index=self._frame_index, stamp=stamp_s)
                seg = recover_missed(self.tracker, seg, self.predictor)  # this frame's features are cached
            else:
                seg = _index_ids(seg)
            tg = None
            if self.targets is not None and len(self.targets):
                tg = self.targets.update(seg, predictor=self.predictor, frame_index=self._frame_index,
                                         stamp=stamp_s, image_size=rgb.shape[:2])
            model_ms = (time.perf_counter() - t0) * 1000.0
            self._latest, self._latest_stamp = seg, stamp_s
            self._image_size = tuple(rgb.shape[:2])
            self._features_from_request = False
            timings = dict(getattr(self.predictor, "last_timings", {}) or {})
            return FrameResult(seg, tg, model_ms, timings)

    @property
    def has_frame(self) -> bool:
        return self._image_size is not None

    # ------------------------------------------------------------------------------------------ requests
    def _use_image(self, rgb: Optional[np.ndarray]) -> tuple[int, int]:
        """Select the image a request runs on; returns its (H, W). Caller holds the lock."""
        if rgb is not None:
            self.predictor.set_image(rgb)
            self.image_passes += 1
            self._image_size = tuple(rgb.shape[:2])
            self._features_from_request = True
            return self._image_size
        if self._image_size is None:
            raise RequestError("no image received yet on ~/input/image; send one or pass an image in the request")
        return self._image_size

    def prompt(self, points_xy, labels, boxes_flat, rgb: Optional[np.ndarray] = None,
               track: bool = False, stamp_s: Optional[float] = None) -> tuple[Segments, list[int]]:
        """Point/box prompts -> (Segments one per prompt, target ids registered when `track`)."""
        with self.lock:
            size = self._use_image(rgb)
            pts, lab, box = validate_prompts(points_xy, labels, boxes_flat, size)
            seg = self.predictor.prompt(points=pts, point_labels=lab, boxes=box)
            return seg, self._register(seg, track, "prompt", stamp_s)

    def text(self, query: str, max_results: int = 0, rgb: Optional[np.ndarray] = None,
             track: bool = False, stamp_s: Optional[float] = None) -> tuple[Segments, list[int]]:
        """Open-vocabulary text request -> (Segments best first, target ids registered when `track`)."""
        query = (query or "").strip()
        if not query:
            raise RequestError("empty text: say what to segment, e.g. 'segment the red box'")
        if len(query) > 512:
            raise RequestError(f"text too long ({len(query)} characters, max 512)")
        if max_results < 0 or max_results > 1000:
            raise RequestError(f"max_results must be in [0, 1000], got {max_results}")
        with self.lock:
            self._use_image(rgb)
            seg = self.predictor.text(query, max_results=max_results or None)
            return seg, self._register(seg, track, query, stamp_s)

    def _register(self, seg: Segments, track: bool, label: str, stamp_s: Optional[float]) -> list[int]:
        if not track:
            return []
        if self.targets is None:
            raise RequestError("track=true needs tracking (parameter tracking.enabled) and the target manager")
        frame_seg = None if self._features_from_request else self._latest
        stamp = stamp_s if stamp_s is not None else self._latest_stamp
        ids = np.zeros(len(seg), np.int64)
        for i in range(len(seg)):
            if seg.masks[i].any():  # an empty result cannot be followed
                ids[i] = self.targets.register(seg, i, label=label, frame_segments=frame_seg, stamp=stamp)
        seg.track_ids = ids
        return [int(t) for t in ids if t > 0]

    def set_vocabulary(self, things: list[str], stuff: list[str]) -> int:
        """Replace the vocabulary; returns the number of classes. Tracks are reset (class ids change meaning)."""
        things = [t.strip() for t in things]
        stuff = [s.strip() for s in stuff]
        if not things and not stuff:
            raise RequestError("empty vocabulary: give at least one thing or stuff class name")
        if any(not n for n in things + stuff):
            raise RequestError("class names must not be empty")
        dup = sorted({n for n in things + stuff if (things + stuff).count(n) > 1})
        if dup:
            raise RequestError(f"duplicate class names: {dup}")
        with self.lock:
            self.predictor.set_vocabulary(things, stuff)
            if self.tracker is not None:
                self.tracker.reset("vocabulary changed")
        return len(things) + len(stuff)

    def set_vocabulary_file(self, path: str) -> int:
        """Load a vocabulary YAML (or a name in config/vocabularies); returns the number of classes."""
        with self.lock:
            vocab = self.predictor.set_vocabulary(path)
            if self.tracker is not None:
                self.tracker.reset("vocabulary changed")
        return len(vocab)

    def class_names(self) -> list[str]:
        """Display names of the active vocabulary (things then stuff), class id order."""
        return list(self.predictor.class_names)

    def set_thresholds(self, **kw) -> None:
        with self.lock:
            self.predictor.set_thresholds(**kw)

    def reset_tracks(self) -> str:
        with self.lock:
            n_t = len(self.targets) if self.targets is not None else 0
            if self.tracker is not None:
                self.tracker.reset("reset requested over ~/reset_tracks")
            if self.targets is not None:
                self.targets.clear()
        return f"tracks reset, {n_t} target(s) removed"

    def remove_target(self, target_id: int) -> bool:
        if self.targets is None:
            raise RequestError("targets are not enabled (parameter tracking.enabled)")
        with self.lock:
            if target_id == 0:
                return self.targets.clear() > 0
            return self.targets.remove(int(target_id))


def _index_ids(seg: Segments) -> Segments:
    """Without a tracker: things get per-frame ids 1..N so the instance image matches the detections."""
    ids = np.zeros(len(seg), np.int64)
    things = np.flatnonzero(seg.is_thing)
    ids[things] = np.arange(1, len(things) + 1)
    seg.track_ids = ids
    return seg


def stamp_to_seconds(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def finite_or_nan(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


__all__ = ["TASKS", "RequestError", "Frame", "FrameMailbox", "Stats", "FrameResult", "Pipeline",
           "validate_prompts", "stamp_to_seconds"]
