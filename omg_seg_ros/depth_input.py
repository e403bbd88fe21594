"""The node's depth side: ~/input/depth and ~/input/camera_info subscriptions, pairing with colour frames, decoding.

Pairing (parameter depth.max_skew_ms): the depth callback only stores messages (the last 8, by stamp); when the
worker takes a colour frame it pairs it with the stored depth image nearest in stamp within the skew. A colour
frame is never held back waiting for depth: without a pair it is processed and published in 2D only and counted
(`frames_without_depth` in /diagnostics). Every problem (no camera_info, an uncalibrated K, an unknown encoding,
another aspect, all readings invalid) is a throttled warning, counted in `depth_problems` with the last one in
`last_depth_problem`, and the frame goes on in 2D.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from omg_seg_core.spatial import DepthFrame, StampedBuffer

from .msgs import depth_frame_from_msgs, stamp_s
from .outputs import camera_topic
from .params import input_qos

DEPTH_TOPIC, CAMERA_INFO_TOPIC = "~/input/depth", "~/input/camera_info"


class DepthInput:
    """Subscriptions and pairing for one camera (see module docstring): ~/input/depth and ~/input/camera_info, or
    ~/<camera>/input/... for a named camera."""

    def __init__(self, node: Any, camera: str = "", group: Any = None) -> None:
        self.node = node
        self.group = group  # callback group of the subscriptions (None: the node's input group)
        self.depth_topic, self.info_topic = camera_topic(DEPTH_TOPIC, camera), camera_topic(CAMERA_INFO_TOPIC, camera)
        self.buffer: StampedBuffer = StampedBuffer(8)
        self.camera_info: Optional[Any] = None
        self._lock = threading.Lock()
        self._subs: list[Any] = []
        self.paired = 0
        self.without_depth = 0
        self.problems = 0
        self.last_problem = ""

    @property
    def enabled(self) -> bool:
        return bool(self._subs)

    def subscribe(self) -> None:
        """(Re)create the subscriptions when depth.enabled, else remove them."""
        self.unsubscribe()
        if not self.node.p("depth.enabled"):
            return
        qos = input_qos(self.node.p("qos.reliability"), max(2, int(self.node.p("qos.depth"))))
        wrap, group = self.node.guard.wrap, self.group or self.node.input_group
        self._subs = [
            self.node.create_subscription(Image, self.depth_topic, wrap("depth callback", self._on_depth), qos,
                                          callback_group=group),
            self.node.create_subscription(CameraInfo, self.info_topic, wrap("camera_info callback", self._on_info),
                                          qos, callback_group=group),
        ]

    def unsubscribe(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []
        with self._lock:
            self.buffer.clear()
        self.camera_info = None  # a new subscription waits for the camera's current calibration

    def _on_depth(self, msg: Image) -> None:
        with self._lock:
            self.buffer.put(stamp_s(msg.header.stamp), msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def pair(self, stamp: float, size: tuple[int, int]) -> Optional[DepthFrame]:
        """The DepthFrame for a colour frame of `stamp` (s) and size (H, W), or None (2D only; counted, and a
        problem warned about)."""
        if not self.enabled:
            return None
        with self._lock:
            hit = self.buffer.nearest(stamp, float(self.node.p("depth.max_skew_ms")) / 1000.0)
        if hit is None:
            self.without_depth += 1
            if len(self.buffer):  # depth arrives, but never close in time
                self.node.get_logger().warning(
                    f"no depth image within depth.max_skew_ms={self.node.p('depth.max_skew_ms')} of the colour "
                    f"stamp {stamp:.3f} (newest depth stamps are off by more); frames go out in 2D",
                    throttle_duration_sec=5.0)
            return None
        _, msg = hit
        try:
            if self.camera_info is None:
                raise ValueError(f"no camera_info received on {self.node.resolve_topic_name(self.info_topic)}: "
                                 "3D needs the colour camera's intrinsics")
            frame = depth_frame_from_msgs(msg, self.camera_info, size, int(self.node.p("limits.max_image_pixels")))
            if not np.isfinite(frame.depth_m).any():
                raise ValueError("every reading of the depth image is invalid (0, NaN or inf)")
            camera = frame.camera
            if abs(camera.width / camera.height / (size[1] / size[0]) - 1.0) > 0.01:
                raise ValueError(f"camera_info is for {camera.width}x{camera.height}, the colour image is "
                                 f"{size[1]}x{size[0]}: not the colour camera's camera_info?")
        except ValueError as e:  # DecodeError included
            self.without_depth += 1
            self.problems += 1
            self.last_problem = str(e)
            self.node.get_logger().warning(f"depth ignored for this frame (2D outputs go on): {e}",
                                           throttle_duration_sec=5.0)
            return None
        self.paired += 1
        return frame

    def diagnostics(self) -> dict[str, Any]:
        if not self.node.p("depth.enabled"):
            return {"depth": "disabled"}
        return {"depth": "enabled", "frames_with_depth": self.paired, "frames_without_depth": self.without_depth,
                "depth_problems": self.problems, "last_depth_problem": self.last_problem,
                "camera_info_received": self.camera_info is not None}


__all__ = ["DepthInput", "DEPTH_TOPIC", "CAMERA_INFO_TOPIC"]
