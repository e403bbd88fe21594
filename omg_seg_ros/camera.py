"""One camera of the node: its topics, mailbox, statistics, outputs, depth input and latest frame.

The node serves every camera of parameter `cameras` with ONE model (omg_seg_core/multi_camera.py): each camera has
its own `VideoSession` (tracker, targets, cached features), mailbox, statistics and publishers; the worker takes
the newest frame of every camera that has one and runs them as one batch (node.py).

Names: the unnamed camera '' (the default `cameras: ['']`) keeps the node's original topics (~/input/image,
~/output/..., /diagnostics status "<node>: pipeline"); a named camera "front" has ~/front/input/image (+ compressed,
~/front/input/depth, ~/front/input/camera_info), ~/front/output/... and the status "<node>: front pipeline". Every
output carries its own input image's header.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Optional

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from std_msgs.msg import Header

from omg_seg_core.multi_camera import CameraFrame
from omg_seg_core.video import FrameResult, VideoSession

from .depth_input import DepthInput
from .msgs import DecodeError, image_to_rgb, stamp_s
from .outputs import Outputs, camera_topic
from .worker import Frame, FrameMailbox, Stats


class Camera:
    """Per-camera state of the node (module docstring). `first`: this camera's Outputs also holds /diagnostics."""

    def __init__(self, node: Any, name: str, mailbox: FrameMailbox, first: bool = False) -> None:
        self.node, self.name = node, name
        self.mailbox = mailbox
        self.stats = Stats()
        self.group = MutuallyExclusiveCallbackGroup()  # this camera's input callbacks (node.py: why one per camera)
        self.outputs = Outputs(node, name, diagnostics=first)
        self.depth_input = DepthInput(node, name, self.group)
        self.session: Optional[VideoSession] = None   # set at configure (CameraSessions[name])
        self.sub: Any = None                          # the image subscription (node._subscribe)
        self.last_header: Optional[Header] = None     # header of the latest processed frame
        self.last_frame_time: Optional[float] = None  # time.monotonic() it was published
        self.bad_frames = 0
        self.recent_errors: list[str] = []  # the last 5 since the last diagnostics (take_errors)
        self._errors_lock = threading.Lock()

    @property
    def label(self) -> str:
        """How messages name this camera."""
        return f"camera '{self.name}'" if self.name else "the camera"

    def topic(self, relative: str) -> str:
        """This camera's version of a node-relative topic ("~/input/image" -> "~/front/input/image")."""
        return camera_topic(relative, self.name)

    # ------------------------------------------------------------------------------------------ frames
    def on_image(self, msg: Any) -> None:
        """Subscription callback: only store (decoding and inference happen on the worker)."""
        self.mailbox.put(Frame(msg=msg, header=msg.header, stamp_s=stamp_s(msg.header.stamp),
                               received=time.monotonic(), index=self.mailbox.received))

    def prepare(self, frame: Frame) -> Optional[tuple[CameraFrame, float, float]]:
        """Decode `frame` and pair its depth -> (CameraFrame, decode ms, ms it waited in the mailbox), or None for a
        bad image (dropped, counted in bad_frames, warned about)."""
        wait_ms = (time.monotonic() - frame.received) * 1000.0
        t0 = time.perf_counter()
        try:
            rgb = image_to_rgb(frame.msg, int(self.node.p("limits.max_image_pixels")))  # Image or CompressedImage
        except DecodeError as e:
            self.bad_frames += 1
            self.note_error(f"dropping input image: {e}")
            return None
        depth = self.depth_input.pair(frame.stamp_s, rgb.shape[:2])
        return CameraFrame(rgb, frame.stamp_s, depth), (time.perf_counter() - t0) * 1e3, wait_ms

    def publish(self, frame: Frame, inp: CameraFrame, result: FrameResult, decode_ms: float, wait_ms: float) -> None:
        """Publish every wanted output of a processed frame (with the frame's own header) and record its stats."""
        self.last_header = frame.header
        self.last_frame_time = time.monotonic()
        published = self.outputs.publish_frame(frame.header, inp.rgb, result, inp.depth)
        t = result.timings
        stages = {"decode": decode_ms, **{k: t[k] for k in ("preprocess", "image_graph", "tracker", "recovery",
                                                           "targets", "depth") if k in t}, **published}
        if "task" in t:
            stages["postprocess"] = t["task"]
        self.stats.record(self._latency_ms(frame), result.model_ms, wait_ms, frame.stamp_s, stages)

    def _latency_ms(self, frame: Frame) -> float:
        """Image stamp -> outputs published (ROS clock, so sim time works); receive time if unstamped."""
        if frame.stamp_s > 0:
            return (self.node.get_clock().now().nanoseconds * 1e-9 - frame.stamp_s) * 1000.0
        return (time.monotonic() - frame.received) * 1000.0

    def note_error(self, text: str, failed_frame: bool = False) -> None:
        """Remember `text` for /diagnostics and warn (throttled); failed_frame: also count a failed frame
        (stats.errors). The worker and the post thread both call it: the update holds the camera's error lock."""
        with self._errors_lock:
            if failed_frame:
                self.stats.errors += 1
            self.recent_errors = (self.recent_errors + [text])[-5:]
        self.node.get_logger().warning(f"{self.label}: {text}" if self.name else text, throttle_duration_sec=2.0)

    def take_errors(self) -> list[str]:
        """The errors noted since the last call (for one diagnostics report), forgetting them."""
        with self._errors_lock:
            errors, self.recent_errors = self.recent_errors, []
        return errors

    # ------------------------------------------------------------------------------------------ teardown
    def stop(self) -> None:
        """Remove the image subscription and the depth input; publishers go with `outputs.destroy()`."""
        if self.sub is not None:
            self.node.destroy_subscription(self.sub)
            self.sub = None
        self.depth_input.unsubscribe()


__all__ = ["Camera"]
