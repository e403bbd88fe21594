"""The node's worker side, ROS-free: the one-slot frame mailboxes, the frame record and rolling statistics.

Kept free of rclpy so the threading can be reasoned about (and tested) on its own; node.py and camera.py move
messages in and out, pipeline.py runs the frames through core's `CameraSessions` (omg_seg_core/multi_camera.py).

Threading: each camera's subscription callback `put`s frames into its `FrameMailbox` (never blocks, overwrites and
counts the stale frame); ONE worker thread gathers the latest of every camera (below). Service handlers call
`VideoSession.prompt/text/...` from another thread; the session's lock keeps a request from interleaving with a
frame, so a prompt runs on the cached features of the latest processed frame.

Several cameras: one mailbox per camera in an `Inbox` (one condition for all); the worker `gather`s the newest
frame of every camera that has one, waiting at most a short batching window for cameras still live, and runs them
through the model as one batch (omg_seg_core/multi_camera.py). A camera that stops is never waited for.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


class RequestError(ValueError):
    """A bad service request or a call the node cannot serve now (message is sent back to the caller)."""


def check_count(n: int, limit: int, what: str, param: str) -> None:
    """RequestError when a request carries more `what` than the parameter `param` allows."""
    if n > limit:
        raise RequestError(f"too many {what}: {n}, limit {limit} (parameter {param})")


def check_max_results(n: int, most: int, default_param: str) -> int:
    """A request's max_results in [0, most] (0 = the parameter `default_param`), else RequestError."""
    if n < 0 or n > most:
        raise RequestError(f"max_results must be in [0, {most}] (0 = the parameter {default_param}; parameter "
                           f"limits.max_results), got {n}")
    return n


def no_frame(camera: Any) -> str:
    """The answer to a request before the camera's first frame (and without an image of its own)."""
    return f"no image received yet on {camera.topic('~/input/image')}; send one or pass an image in the request"


@dataclass
class Frame:
    """One input frame waiting for the worker."""

    msg: Any                 # sensor_msgs Image or CompressedImage (decoded by the worker, not the callback)
    header: Any              # std_msgs/Header of the input image (copied into every output)
    stamp_s: float           # header stamp in seconds
    received: float          # time.monotonic() when the callback stored it
    index: int               # running input counter (gaps = dropped frames)


class FrameMailbox:
    """A one-slot mailbox: `put` replaces the waiting frame (counted as dropped), `pop` takes it (Inbox.gather
    waits for any camera's)."""

    def __init__(self, cond: Optional[threading.Condition] = None) -> None:
        self._cond = cond if cond is not None else threading.Condition()  # shared by the mailboxes of an Inbox
        self._item: Optional[Frame] = None
        self._closed = False
        self.dropped = 0
        self.received = 0
        self.last_put: Optional[float] = None  # time.monotonic() of the latest put

    def put(self, item: Frame) -> bool:
        """Store `item`; returns True when it overwrote a frame the worker had not taken yet."""
        with self._cond:
            overwrote = self._item is not None
            if overwrote:
                self.dropped += 1
            self._item = item
            self.received += 1
            self.last_put = time.monotonic()
            self._cond.notify_all()
            return overwrote

    @property
    def waiting(self) -> bool:
        """A frame is waiting to be taken (call with the condition held, as Inbox does, for a stable answer)."""
        return self._item is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def pop(self) -> Optional[Frame]:
        """The waiting frame or None, without waiting (Inbox.gather calls it with the shared condition held)."""
        with self._cond:
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


class Inbox:
    """The mailboxes of several cameras on ONE condition, so one worker can wait for any of them (module docstring).

    gather(timeout, window, live_s): wait up to `timeout` s for a frame of any camera; then wait at most `window` s
    more for the other LIVE cameras (a frame within the last `live_s` s, i.e. a camera expected to deliver soon)
    that have no frame yet; then take the newest frame of every camera that has one. A stalled or dead camera
    costs nothing (not live), a slower one at most `window` once the worker is idle; while the worker is busy the
    frames of every camera simply collect, one per camera, and the next gather takes them all at once."""

    def __init__(self, n: int) -> None:
        self._cond = threading.Condition()
        self.boxes = [FrameMailbox(self._cond) for _ in range(n)]

    def gather(self, timeout: float, window: float, live_s: float = 1.0) -> list[Optional[Frame]]:
        """Per camera (in order) its newest frame or None; all None after `timeout` or when closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed() or any(b.waiting for b in self.boxes), timeout)
            if window > 0 and not self._closed():
                now = time.monotonic()
                live = [b for b in self.boxes if b.last_put is not None and now - b.last_put <= live_s]
                self._cond.wait_for(lambda: self._closed() or all(b.waiting for b in live), window)
            return [b.pop() for b in self.boxes]

    def _closed(self) -> bool:
        return all(b.closed for b in self.boxes)

    def close(self) -> None:
        for b in self.boxes:
            b.close()

    def reopen(self) -> None:
        for b in self.boxes:
            b.reopen()


class Stats:
    """Rolling pipeline statistics for diagnostics (bounded memory: fixed-size windows)."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.latency_ms: deque[float] = deque(maxlen=window)   # image stamp -> outputs published
        self.model_ms: deque[float] = deque(maxlen=window)     # set_image + task + tracking
        self.wait_ms: deque[float] = deque(maxlen=window)      # callback stored it -> worker took it
        self.overhead_ms: deque[float] = deque(maxlen=window)  # latency - model (transport in, wait, decode, publish)
        self.done_times: deque[float] = deque(maxlen=window)
        #: per stage of a frame (decode, preprocess, image_graph, postprocess, tracker, recovery, targets,
        #: out_<output> = message building + publish): ms of the last `window` frames
        self.stages: dict[str, deque[float]] = {}
        self._window = window
        self.processed = 0
        self.errors = 0
        #: the last frame's values, so a client can pair them with that frame's stamp (benchmarks)
        self.last: dict[str, float] = {}

    def record(self, latency_ms: float, model_ms: float, wait_ms: float = 0.0, stamp_s: float = 0.0,
               stages: Optional[dict[str, float]] = None) -> None:
        with self._lock:
            for name, ms in (stages or {}).items():
                self.stages.setdefault(name, deque(maxlen=self._window)).append(float(ms))
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
            stages = {k: float(np.percentile(v, 50)) for k, v in self.stages.items() if v}
        rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else 0.0
        pct = (lambda a, q: float(np.percentile(a, q)) if a.size else float("nan"))
        return {"rate_hz": rate, "latency_p50_ms": pct(lat, 50), "latency_p95_ms": pct(lat, 95),
                "model_p50_ms": pct(mod, 50), "model_p95_ms": pct(mod, 95), "queue_wait_p50_ms": pct(wait, 50),
                "overhead_p50_ms": pct(over, 50), "overhead_p95_ms": pct(over, 95),
                "processed": self.processed, "errors": self.errors, "last": last, "stage_p50_ms": stages}


__all__ = ["RequestError", "check_count", "check_max_results", "no_frame", "Frame", "FrameMailbox", "Inbox",
           "Stats"]
