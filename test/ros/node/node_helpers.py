"""Helpers of the node tests over real DDS: a camera publisher, request builders, diagnostics reader."""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import Point
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from omg_seg_ros.msgs import MessageCodec
from ros_helpers import DISCOVERY_TIMEOUT

NS = "/omg_seg"
CODEC = MessageCodec.rclpy()
H, W = 240, 320
RNG = np.random.default_rng(1)


def scene(seed: int = 0) -> np.ndarray:
    """A simple synthetic frame: coloured rectangles on a grey floor (content does not matter for plumbing)."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 90, np.uint8)
    for _ in range(4):
        x, y = rng.integers(0, W - 60), rng.integers(0, H - 60)
        img[y:y + rng.integers(20, 60), x:x + rng.integers(20, 60)] = rng.integers(0, 256, 3)
    return img


def object_scene(seed: int = 5) -> tuple[np.ndarray, list[float]]:
    """A generated robot-workspace frame (320x240) and the xyxy box of its largest object: a prompt on it must
    return a thing the shipped model knows (rectangles on grey may be answered with a stuff class)."""
    from omg_seg_core.train.synth_eval import heldout_frames

    frame = heldout_frames(1, seed=seed)[0]
    x, y, w, h = max((s for s in frame.segments if s.is_thing), key=lambda s: s.area).bbox
    return frame.rgb, [float(x), float(y), float(x + w), float(y + h)]


def wait_matched(pub, timeout: float = DISCOVERY_TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while pub.get_subscription_count() == 0:
        if time.monotonic() > end:
            raise TimeoutError(f"no subscriber matched {pub.topic_name} within {timeout} s")
        time.sleep(0.05)


class Camera:
    """A publisher of stamped frames on the node's input."""

    def __init__(self, client, qos=qos_profile_sensor_data, compressed: bool = False, match: bool = True) -> None:
        self.client, self.compressed = client, compressed
        topic = f"{NS}/input/image" + ("/compressed" if compressed else "")
        self.pub = client.node.create_publisher(CompressedImage if compressed else Image, topic, qos)
        self.stamps: list[tuple[int, int]] = []
        if match:
            wait_matched(self.pub)

    def send(self, rgb: np.ndarray = None, encoding: str = "rgb8", msg=None) -> tuple[int, int]:
        if msg is None:
            rgb = scene(len(self.stamps)) if rgb is None else rgb
            msg = CODEC.rgb_to_compressed(rgb, CODEC.header(), "jpeg") if self.compressed else CODEC.rgb_to_image(rgb, CODEC.header(), encoding)
        msg.header.frame_id = "camera_optical"
        msg.header.stamp = self.client.node.get_clock().now().to_msg()
        self.pub.publish(msg)
        self.stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
        return self.stamps[-1]

    def close(self) -> None:
        self.client.node.destroy_publisher(self.pub)


def stamp(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def diag(client, timeout: float = 10.0) -> dict[str, str]:
    """Values of the next /diagnostics status of the node."""
    from diagnostic_msgs.msg import DiagnosticArray

    col = client.collector(DiagnosticArray, "/diagnostics")
    try:
        msgs = col.wait(lambda m: any(s.name.startswith("omg_seg") for a in m for s in a.status), timeout)
        st = [s for a in msgs for s in a.status if s.name.startswith("omg_seg")][-1]
        return {kv.key: kv.value for kv in st.values} | {"_message": st.message, "_level": st.level}
    finally:
        col.close()


def text_req(text: str, **kw):
    from omg_seg_msgs.srv import SegmentText

    return SegmentText.Request(text=text, **kw)


def prompt_req(points=(), labels=(), boxes=(), **kw):
    from omg_seg_msgs.srv import SegmentPrompt

    return SegmentPrompt.Request(points=[Point(x=float(x), y=float(y)) for x, y in points],
                                 point_labels=list(labels), boxes=[float(b) for b in boxes], **kw)


def srv(name: str):
    from omg_seg_msgs.srv import (AddExemplar, ExemplarFile, ListExemplars, RemoveExemplar, RemoveTarget,
                                  SegmentLike, SegmentPrompt, SegmentText, SetVocabulary)

    return {"segment_text": SegmentText, "segment_prompt": SegmentPrompt, "set_vocabulary": SetVocabulary,
            "remove_target": RemoveTarget, "reset_tracks": Trigger, "segment_like": SegmentLike,
            "add_exemplar": AddExemplar, "remove_exemplar": RemoveExemplar, "list_exemplars": ListExemplars,
            "save_exemplars": ExemplarFile, "load_exemplars": ExemplarFile}[name]


def call(client, name: str, req):
    return client.call(srv(name), f"{NS}/{name}", req)
