"""Pointing gestures as text-request hints: a geometry_msgs/PointStamped topic (parameter pointing.topic, e.g.
RViz's "Publish Point" tool on /clicked_point; '' = off) projected into the colour image.

A point in the colour camera's frame (the images' frame_id) is projected with the camera intrinsics of
~/input/camera_info (depth.enabled). A point in another frame is transformed with tf2 when tf2_ros is importable
(it is on robots); without tf2 the request is answered with a clear message. The latest gesture younger than
pointing.max_age_s is the hint of a ~/segment_text request that brings no hint of its own. With several cameras the
one subscription serves all: a request on camera X projects the gesture with X's camera_info into X's frame.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np


class PointingInput:
    """Subscription and projection for one node (module docstring)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self._sub = None
        self.latest: Optional[tuple[Any, float]] = None  # (PointStamped, time.monotonic() received)
        self._tf_buffer = None

    def subscribe(self) -> None:
        self.unsubscribe()
        topic = str(self.node.p("pointing.topic"))
        if not topic:
            return
        from geometry_msgs.msg import PointStamped

        self._sub = self.node.create_subscription(PointStamped, topic,
                                                  self.node.guard.wrap("pointing callback", self._on_point), 10,
                                                  callback_group=self.node.input_group)
        try:  # robots have tf2; the development machines do not (docs/ros.md)
            import tf2_ros

            if self._tf_buffer is None:
                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self.node)
        except ImportError:
            self._tf_buffer = None

    def unsubscribe(self) -> None:
        if self._sub is not None:
            self.node.destroy_subscription(self._sub)
            self._sub = None
        self.latest = None

    def _on_point(self, msg) -> None:
        self.latest = (msg, time.monotonic())

    def hint(self, image_header: Any, image_size: tuple[int, int], info: Any) -> Optional[np.ndarray]:
        """The latest gesture as a pixel [1, 2] (x, y) of a camera's latest frame (its header, size (H, W) and
        sensor_msgs/CameraInfo `info`, None when it has none), None when pointing is off or no recent gesture
        exists; ValueError with the reason when a gesture exists but cannot be used."""
        if self._sub is None or self.latest is None:
            return None
        msg, received = self.latest
        if time.monotonic() - received > float(self.node.p("pointing.max_age_s")):
            return None
        if info is None:
            raise ValueError("pointing: no camera model (set depth.enabled and publish the colour camera's "
                             "camera_info) to project the pointed-at 3D point into the image")
        from .msgs import camera_from_info

        camera = camera_from_info(info).scaled_to(image_size[1], image_size[0])
        p = msg.point
        target = image_header.frame_id if image_header is not None else ""
        if msg.header.frame_id and target and msg.header.frame_id != target:
            p = self._transform(msg, target)
        uv = camera.project(np.array([[p.x, p.y, p.z]]))[0]
        if not np.isfinite(uv).all():
            raise ValueError(f"pointing: the point ({p.x:.2f}, {p.y:.2f}, {p.z:.2f}) is behind the camera")
        h, w = image_size
        if not (0 <= uv[0] < w and 0 <= uv[1] < h):
            raise ValueError(f"pointing: the point projects to ({uv[0]:.0f}, {uv[1]:.0f}), outside the {w}x{h} image")
        return uv.reshape(1, 2).astype(np.float32)

    def _transform(self, msg, target: str):
        if self._tf_buffer is None:
            raise ValueError(f"pointing: the point is in frame '{msg.header.frame_id}', the images in '{target}'; "
                             "transforming it needs tf2_ros (not installed here), or publish it in the camera frame")
        import tf2_geometry_msgs  # noqa: F401  registers PointStamped with tf2

        try:
            return self._tf_buffer.transform(msg, target).point
        except Exception as e:  # tf2's LookupException / ExtrapolationException / ...
            raise ValueError(f"pointing: no transform {msg.header.frame_id} -> {target}: {e}") from None


__all__ = ["PointingInput"]
