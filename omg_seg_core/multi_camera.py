"""`CameraSessions`: every camera of a robot through ONE model, the newest frames of several cameras as one batch.

    sessions = CameraSessions(build_predictor("tiny"), ["front", "left", "right"],
                              tracking=lambda: (Tracker(cfg), TargetManager(cfg)))
    results = sessions.step({"front": CameraFrame(front_rgb, stamp), "left": CameraFrame(left_rgb, stamp)})
    seg, ids = sessions["left"].text("segment the red box", track=True)   # on the left camera's latest frame

Each camera has its own `VideoSession` (tracker, persistent targets, cached image features, frame counter) on a
view of the one predictor (predict/view.py): the model, backend, vocabulary / text embeddings and thresholds are
shared, so a vocabulary or threshold change reaches every camera (`set_vocabulary` resets every camera's tracks).

`step` takes the frames of the cameras that have one (a camera without a new frame is simply not in the call and
keeps its state) and runs them through backbone + pixel decoder + decoder in ONE image-graph call per padded size
(predict/batch.encode_images), then each camera's task, tracking and 3D. It is `encode` (the image graph, without
the lock) followed by `finish` (under the lock), so a worker can run the image graph of the next batch while the
current one is post-processed. All sessions share one lock: a request on any camera never interleaves with a
frame's post-processing, exactly as for one camera; image-graph calls are serialised by the predictor's
`graph_lock` (a TensorRT execution context serves one call at a time).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from .predict.batch import Encoded, encode_images, install_images
from .predict.view import PredictorView
from .spatial import DepthConfig, DepthFrame
from .video import FrameResult, VideoSession, check_depth, swap_vocabulary


@dataclass
class EncodedFrames:
    """Frames through the image graph, not yet given to their cameras (`CameraSessions.encode` -> `finish`):
    per frame (features of batch 1, ImageMeta, ms per stage) or the exception its size's image-graph call raised
    (predict/batch.encode_images), in `frames` order; batch_ms: the whole encode."""

    frames: dict[str, "CameraFrame"]
    encoded: list[Encoded]
    batch_ms: float


@dataclass
class CameraFrame:
    """One camera's frame for `CameraSessions.step`: RGB uint8 [H, W, 3], stamp (s), optional registered depth."""

    rgb: np.ndarray
    stamp: Optional[float] = None
    depth: Optional[DepthFrame] = None


class CameraSessions:
    """See module docstring.

    predictor: the OMGSegPredictor every camera shares (each session gets `PredictorView(predictor)`).
    names: camera names, in order (unique; "" is a valid name for a single unnamed camera).
    tracking: called once per camera -> (tracker, targets) for its session, or None (tracking off for all).
    task, depth_config: as VideoSession (the same for every camera; change them here).
    """

    def __init__(self, predictor: Any, names: Sequence[str],
                 tracking: Optional[Callable[[], tuple[Any, Any]]] = None, task: str = "panoptic",
                 depth_config: Optional[DepthConfig] = None) -> None:
        names = list(names)
        if not names:
            raise ValueError("CameraSessions needs at least one camera")
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        self.predictor = predictor
        self.lock = threading.RLock()
        self.sessions: dict[str, VideoSession] = {}
        for name in names:
            tracker, targets = tracking() if tracking is not None else (None, None)
            self.sessions[name] = VideoSession(PredictorView(predictor), tracker=tracker, targets=targets,
                                               task=task, depth_config=depth_config, lock=self.lock)
        self.batches = 0          # step calls that ran the image graph
        self.batched_frames = 0   # frames those calls held (batched_frames / batches = mean batch size)
        self.last_batch_ms = 0.0  # pre-processing + image graph of the last batch, all its images

    # ------------------------------------------------------------------------------------------ cameras
    @property
    def names(self) -> list[str]:
        """The camera names, in order."""
        return list(self.sessions)

    def __getitem__(self, name: str) -> VideoSession:
        """The session of camera `name`; KeyError naming the cameras there are."""
        try:
            return self.sessions[name]
        except KeyError:
            raise KeyError(f"unknown camera {name!r}; cameras: {self.names}") from None

    def __iter__(self) -> Iterator[VideoSession]:
        return iter(self.sessions.values())

    def __len__(self) -> int:
        return len(self.sessions)

    # ------------------------------------------------------------------------------------------ frames
    def step(self, frames: Mapping[str, CameraFrame],
             on_result: Optional[Callable[[str, FrameResult], None]] = None
             ) -> dict[str, Union[FrameResult, Exception]]:
        """Process the newest frame of every camera in `frames` (name -> CameraFrame): `encode` then `finish`."""
        return self.finish(self.encode(frames), on_result)

    def encode(self, frames: Mapping[str, CameraFrame]) -> "EncodedFrames":
        """First half of `step`: pre-processing and ONE image-graph call per padded size for all `frames`, WITHOUT
        the sessions' lock, so requests and the previous batch's `finish` go on meanwhile (a pipelined worker
        encodes batch k+1 while batch k is post-processed). Unknown cameras (KeyError naming the cameras), a bad
        image or depth (ValueError) raise before anything runs."""
        for name, f in frames.items():
            self[name]
            check_depth(f.rgb, f.depth)
        t0 = time.perf_counter()
        encoded = encode_images(self.predictor, [f.rgb for f in frames.values()]) if frames else []
        return EncodedFrames(dict(frames), encoded, (time.perf_counter() - t0) * 1e3)

    def finish(self, batch: "EncodedFrames", on_result: Optional[Callable[[str, FrameResult], None]] = None
               ) -> dict[str, Union[FrameResult, Exception]]:
        """Second half of `step`, holding the lock: every camera of the batch takes its image's features, then per
        camera (in order) task -> tracking -> 3D and `on_result(name, result)` right after its result (still
        holding the lock: publish there, so a camera's outputs do not wait for the cameras after it). Returns name
        -> FrameResult, or the exception that camera's post-processing or on_result raised (the others go on).
        Each result's model_ms = the batch's pre-processing + image graph + that camera's own work."""
        out: dict[str, Union[FrameResult, Exception]] = {}
        if not batch.frames:
            return out
        with self.lock:
            items = []
            for (name, f), enc in zip(batch.frames.items(), batch.encoded):
                if isinstance(enc, Exception):  # its size's image-graph call failed: that camera only
                    out[name] = enc
                    continue
                session = self[name]
                install_images([session.predictor], [f.rgb], [enc])
                session.frame_image_set(f.rgb.shape)
                items.append((session, name, f))
            self.batches += 1
            self.batched_frames += len(items)
            self.last_batch_ms = batch.batch_ms
            for session, name, f in items:
                try:
                    result = session.finish_frame(time.perf_counter() - batch.batch_ms / 1e3, f.stamp, depth=f.depth)
                    if on_result is not None:
                        on_result(name, result)
                    out[name] = result
                except Exception as e:  # noqa: BLE001 - one camera's failure must not stop the others
                    out[name] = e
        return out

    # ------------------------------------------------------------------------------------------ shared settings
    def set_vocabulary(self, things: Any, stuff: Sequence[str] = (), max_classes: Optional[int] = None,
                       cancel: Optional[threading.Event] = None) -> int:
        """VideoSession.set_vocabulary for every camera at once: embedded WITHOUT the lock (frames go on with the
        old vocabulary), swapped in once for the shared predictor, every camera's tracks reset. Returns the
        number of classes."""
        return swap_vocabulary(self.predictor, self.lock, [s.tracker for s in self], things, stuff, max_classes,
                               cancel)

    @property
    def class_names(self) -> list[str]:
        """The shared vocabulary's class names."""
        return self._first.class_names  # one predictor: every camera's

    def set_thresholds(self, **kw: Any) -> None:
        """OMGSegPredictor.set_thresholds on the shared predictor (every camera)."""
        self._first.set_thresholds(**kw)  # on the shared predictor: every camera's

    def set_tracker_config(self, cfg: Any) -> None:
        """The tracker settings of every camera (VideoSession.set_tracker_config)."""
        for session in self:
            session.set_tracker_config(cfg)

    def reset_tracks(self, reason: str = "reset requested") -> int:
        """Forget every camera's tracks and targets (VideoSession.reset_tracks); returns the targets removed."""
        with self.lock:
            return sum(session.reset_tracks(reason) for session in self)

    # ------------------------------------------------------------------------------------------ exemplars
    # One book on the shared predictor: a name taught on one camera is found on every camera.
    def remove_exemplar(self, name: str = "") -> int:
        """VideoSession.remove_exemplar, and every camera stops preferring the removed name's target."""
        with self.lock:
            n = self.exemplars.remove(name)
            for session in self:
                session.forget_exemplar_targets()
            return n

    def save_exemplars(self, path: str) -> int:
        """VideoSession.save_exemplars (the shared book)."""
        return self._first.save_exemplars(path)

    def load_exemplars(self, path: str) -> int:
        """VideoSession.load_exemplars for every camera (one book; no camera prefers an old target)."""
        with self.lock:
            n = self.predictor.load_exemplars(path)
            for session in self:
                session.forget_exemplar_targets(everything=True)
            return n

    @property
    def exemplars(self) -> Any:
        """The shared ExemplarBook (predict/exemplar_book.py)."""
        return self.predictor.exemplars

    @property
    def _first(self) -> VideoSession:
        return next(iter(self))

    @property
    def task(self) -> str:
        return self._first.task

    @task.setter
    def task(self, task: str) -> None:
        self._set_everywhere("task", task)

    @property
    def depth_config(self) -> DepthConfig:
        return self._first.depth_config

    @depth_config.setter
    def depth_config(self, cfg: DepthConfig) -> None:
        self._set_everywhere("depth_config", cfg)

    def _set_everywhere(self, name: str, value: Any) -> None:
        """Set a VideoSession attribute of every camera (a bad value raises at the first: nothing changed)."""
        with self.lock:
            for session in self:
                setattr(session, name, value)

    def release(self) -> None:
        """Free every camera's cached features and the shared backend's device memory (node deactivate on a GPU);
        the sessions are unusable afterwards."""
        with self.lock:
            for session in self:
                session.predictor.clear_image()
            self.predictor.release()  # the shared backend, once

    @property
    def image_passes(self) -> int:
        """Backbone passes of every camera's images (frames and request images; a batch counts each image)."""
        return sum(s.image_passes for s in self)


__all__ = ["CameraSessions", "CameraFrame", "EncodedFrames"]
