"""The node's worker: the newest frames of every camera through the model as one batch, in two overlapping stages.

Stage 1 (the worker thread): gather the newest frame of every camera that has one (worker.Inbox: at most
`batch_window_ms` of waiting for the other live cameras), decode them and run their image graph as ONE batch
(CameraSessions.encode). Stage 2 (one post thread): per camera task, tracking and 3D (CameraSessions.finish) and its
outputs, published as soon as that camera's frame is done. Stage 1 hands a batch over once stage 2 finished the
previous one, so at most one batch waits and the image graph of batch k+1 runs while batch k is post-processed:
the CPU's cores stay busy (on 2 cores one stage alone leaves one idle much of the time). Every error is reported and
counted for the cameras it hit; the worker keeps serving. `postprocess_threads` (read when the worker starts) gives
the post thread its own torch intra-op thread count (`own_torch_threads`).
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

from .camera import Camera
from .worker import Frame


def own_torch_threads(pool: ThreadPoolExecutor, threads: int) -> None:
    """Give the single thread of `pool` `threads` torch intra-op threads and leave every other thread's count as it
    was. `torch.set_num_threads` sets the calling thread's OpenMP count AND the process-wide count that a thread
    takes on its first parallel op: so the pool thread sets it and takes it (`get_num_threads`), then the calling
    thread puts the process-wide count back (which re-sets its own count to the same value)."""
    import torch

    before = torch.get_num_threads()

    def take() -> int:
        torch.set_num_threads(threads)
        return torch.get_num_threads()

    pool.submit(take).result()
    torch.set_num_threads(before)


class FramePipeline:
    """The worker of `node` (an OmgSegNode: its inbox, cameras, sessions, parameters and guard)."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def run(self, stop: threading.Event) -> None:
        """The worker thread's body, until `stop` is set (module docstring)."""
        pending: Optional[Future] = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="omg_seg_post") as post:
            post_threads = int(self.node.p("postprocess_threads"))
            if post_threads > 0:
                own_torch_threads(post, post_threads)
            while not stop.is_set():
                frames = self.node.inbox.gather(timeout=0.2, window=float(self.node.p("batch_window_ms")) / 1000.0)
                if stop.is_set() or not any(frames):
                    continue
                sessions = self.node.sessions  # read once: a cleanup sets it to None
                work = self._prepare(frames) if sessions is not None else {}
                if not work:
                    continue
                try:
                    batch = sessions.encode({name: w[2] for name, w in work.items()})
                except Exception as e:  # keep serving: one bad batch must not kill the worker
                    self._batch_failed(e, [w[0] for w in work.values()])  # the cameras whose frames it held
                    continue
                if pending is not None:
                    pending.result()
                pending = post.submit(self._finish, sessions, batch, work)

    def _prepare(self, frames: list[Optional[Frame]]) -> dict:
        """Decode the gathered frames (per camera, None = no new frame) -> camera name -> (camera, frame,
        CameraFrame, decode ms, wait ms) of the frames to run (a bad image was dropped: counted, warned)."""
        work = {}
        for cam, frame in zip(self.node.cameras, frames):
            prepared = cam.prepare(frame) if frame is not None else None
            if prepared is not None:
                work[cam.name] = (cam, frame, *prepared)
        return work

    def _finish(self, sessions: Any, batch: Any, work: dict) -> None:
        """Post-process the batch per camera and publish each camera's outputs as soon as its frame is done."""
        def publish(name: str, result) -> None:
            cam, frame, inp, decode_ms, wait_ms = work[name]
            cam.publish(frame, inp, result, decode_ms, wait_ms)

        try:
            results = sessions.finish(batch, on_result=publish)
        except Exception as e:  # noqa: BLE001 - the post stage reports, never raises into the worker
            self._batch_failed(e, [w[0] for w in work.values()])
            return
        for name, result in results.items():
            if isinstance(result, Exception):  # that camera failed after the batch; the others are published
                self._batch_failed(result, [work[name][0]])

    def _batch_failed(self, e: Exception, cameras: list[Camera]) -> None:
        self.node.guard.report("worker", e)
        for cam in cameras:
            cam.note_error(f"frame failed: {type(e).__name__}: {e}", failed_frame=True)


__all__ = ["FramePipeline", "own_torch_threads"]
