"""The node's publishers: created on activate, destroyed on deactivate; each output switchable by parameter.
One `Outputs` per camera: a named camera publishes under ~/<name>/output/... (camera_topic), the unnamed one under
~/output/...; /diagnostics has one publisher per node (the first camera's Outputs holds it).

Messages are only built for outputs that are enabled AND have a subscriber: building a full-frame overlay or
per-segment masks nobody listens to would add to the latency of the outputs somebody does listen to.
"""
from __future__ import annotations

import time
from typing import Any, Optional, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from omg_seg_core.viz.overlay import render_overlay

from .msgs import MessageCodec
from .params import latched_qos

#: name -> (message type name, topic). Types are resolved lazily (generated packages import slowly).
TOPICS = {
    "semantic": ("Image", "~/output/semantic"),
    "instance_ids": ("Image", "~/output/instance_ids"),
    "detections": ("Detection2DArray", "~/output/detections"),
    "segments": ("SegmentArray", "~/output/segments"),
    "overlay": ("Image", "~/output/overlay"),
    "targets": ("SegmentArray", "~/output/targets"),
    # with depth (depth.enabled and a paired depth image): 3D in the colour camera's optical frame
    "detections_3d": ("Detection3DArray", "~/output/detections_3d"),
    "markers": ("MarkerArray", "~/output/markers"),
    "points": ("PointCloud2", "~/output/points"),
}
#: The outputs built only for a frame that has depth.
DEPTH_OUTPUTS = ("detections_3d", "markers", "points")


def _msg_type(name: str):
    if name == "Image":
        return Image
    if name in ("Detection2DArray", "Detection3DArray"):
        import vision_msgs.msg

        return getattr(vision_msgs.msg, name)
    if name == "MarkerArray":
        from visualization_msgs.msg import MarkerArray

        return MarkerArray
    if name == "PointCloud2":
        from sensor_msgs.msg import PointCloud2

        return PointCloud2
    from omg_seg_msgs.msg import SegmentArray

    return SegmentArray


def camera_topic(topic: str, camera: str) -> str:
    """A node-relative topic of camera `camera`: "~/output/overlay" -> "~/front/output/overlay" ('' unchanged)."""
    return topic.replace("~/", f"~/{camera}/", 1) if camera else topic


class Outputs:
    """Publishers of one camera (see module docstring); `diagnostics`: also the node's /diagnostics publisher."""

    def __init__(self, node: Any, camera: str = "", diagnostics: bool = True) -> None:
        self.node = node
        self.camera = camera
        self.with_diagnostics = diagnostics
        self.codec = MessageCodec.rclpy()
        self.pubs: dict[str, Any] = {}
        self.label_pub = None
        self.diag_pub = None
        self.marker_ids: list[int] = []  # markers drawn by the last MarkerArray (deleted when their object goes)

    def create(self) -> None:
        self.destroy()
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        for name, (tname, topic) in TOPICS.items():
            self.pubs[name] = self.node.create_publisher(_msg_type(tname), camera_topic(topic, self.camera), qos)
        from vision_msgs.msg import LabelInfo

        self.label_pub = self.node.create_publisher(LabelInfo, camera_topic("~/output/label_info", self.camera),
                                                    latched_qos())
        if self.with_diagnostics:
            self.diag_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def destroy(self) -> None:
        for pub in list(self.pubs.values()) + [self.label_pub, self.diag_pub]:
            if pub is not None:
                self.node.destroy_publisher(pub)
        self.pubs = {}
        self.label_pub = self.diag_pub = None
        self.marker_ids = []

    def wanted(self, name: str) -> bool:
        pub = self.pubs.get(name)
        return pub is not None and bool(self.node.p(f"outputs.{name}")) and pub.get_subscription_count() > 0

    def publish_frame(self, header: Header, rgb: np.ndarray, result, depth=None) -> dict[str, float]:
        """Build and publish every wanted output of one frame (3D ones when `depth`, the frame's DepthFrame, is
        given); returns ms per output (build + publish)."""
        seg, codec = result.segments, self.codec
        builders = [  # cheapest first: consumers of detections/segments do not wait for full-frame images
            ("detections", lambda: codec.detections_msg(seg, header)),
            ("segments", lambda: codec.segments_to_msg(seg, header)),
            ("targets", lambda: codec.segments_to_msg(result.targets, header, task="targets")),
            ("semantic", lambda: codec.semantic_image(seg, header)),
            ("instance_ids", lambda: codec.instance_image(seg, header)),
            ("overlay", lambda: codec.numpy_to_image(
                render_overlay(rgb, seg if result.targets is None else _with_targets(seg, result.targets)), "rgb8",
                header)),
            ("detections_3d", lambda: codec.detections_3d_msg(seg, header)),
            ("markers", lambda: self._markers(seg, header)),
            ("points", lambda: codec.points_msg(seg, rgb, depth.depth_m, depth.camera, header,
                                                int(self.node.p("points.decimation")))),
        ]
        timings: dict[str, float] = {}
        if depth is None and self.marker_ids and self.wanted("markers"):
            self.pubs["markers"].publish(self._markers(seg[[]], header))  # no depth now: take the boxes down
        for name, build in builders:
            if (name == "targets" and result.targets is None) or not self.wanted(name):
                continue
            if name in DEPTH_OUTPUTS and depth is None:
                continue
            t0 = time.perf_counter()
            self.pubs[name].publish(build())
            timings[f"out_{name}"] = (time.perf_counter() - t0) * 1e3
        return timings

    def _markers(self, seg, header):
        msg, self.marker_ids = self.codec.markers_msg(seg, header, self.marker_ids)
        return msg

    def publish_label_info(self, class_names: Sequence[str], header: Optional[Header]) -> None:
        if self.label_pub is None or not self.node.p("outputs.label_info"):
            return
        h = Header()
        if header is not None:
            h.frame_id = header.frame_id
            h.stamp = header.stamp
        thr = float(self.node.p("instance_score_thr"))
        self.label_pub.publish(self.codec.label_info_msg(list(class_names), h, thr))

    def publish_diagnostics(self, msg) -> None:
        if self.diag_pub is not None:
            self.diag_pub.publish(msg)


def _with_targets(seg, targets):
    """Frame segments followed by the found targets (drawn last, on top)."""
    from dataclasses import replace

    from omg_seg_core.structures import Segments

    found = targets[targets.areas() > 0]  # lost targets (empty masks) are not drawn
    if len(found) == 0:
        return seg
    return Segments.cat([seg, replace(found, class_names=[f"target:{n}" for n in found.class_names])])
