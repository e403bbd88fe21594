"""~/segment_text with a spatial hint over real DDS: hint points decide between look-alikes, bad hints get clear
errors, and a pointing gesture (geometry_msgs/PointStamped in the camera frame, parameter pointing.topic) projected
with the camera_info becomes the hint (issue: "the red box I'm pointing to")."""
from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import Point, PointStamped
from sensor_msgs.msg import CameraInfo

from node_helpers import CODEC, NS, Camera, call, text_req, wait_matched


@pytest.fixture(scope="module")
def twins():
    from omg_seg_core.train.lookalike_eval import lookalike_frames

    frame, tid, wid = next(iter(lookalike_frames(1, seed=3)))
    return frame, tid, wid


def _show(client, frame):
    """Send the frame until the node has processed it (its segments come out)."""
    from omg_seg_msgs.msg import SegmentArray

    col = client.collector(SegmentArray, f"{NS}/output/segments")
    cam = Camera(client)
    try:
        for _ in range(20):
            sent = cam.send(frame.rgb)
            try:
                col.wait(lambda ms: any((m.header.stamp.sec, m.header.stamp.nanosec) == sent for m in ms), 3.0)
                return
            except TimeoutError:
                continue
        raise TimeoutError("the frame never came out")
    finally:
        cam.close()
        col.close()


def _mask(resp):
    from omg_seg_ros.msgs import segments_from_msg

    return segments_from_msg(resp.segments).masks[0]


def test_hint_points_pick_the_pointed_twin(client, seg_node, twins):
    from omg_seg_core.structures import mask_iou
    from omg_seg_core.train.data import click_point

    frame, tid, wid = twins
    _show(client, frame)
    info = next(s for s in frame.segments if s.id == tid)
    for uid in (tid, wid):
        m = frame.panoptic == uid
        x, y = click_point(m)
        r = call(client, "segment_text", text_req(f"the {info.colour} {info.shape}",
                                                   hint_points=[Point(x=float(x), y=float(y))]))
        assert r.success and "hint point" in r.message, r.message
        assert mask_iou(_mask(r), m) >= 0.5
    bad = [text_req("the box", hint_points=[Point(x=1e6, y=0.0)]),
           text_req("the box", hint_points=[Point(x=float("nan"), y=1.0)]),
           text_req("the box", hint_points=[Point(x=5.0, y=5.0)], hint_labels=[7]),
           text_req("the box", hint_labels=[1]),
           text_req("the box", hint_boxes=[1.0, 2.0, 3.0])]
    for req in bad:
        r = call(client, "segment_text", req)
        assert not r.success and "hint" in r.message, r.message
    assert seg_node.alive()


def test_pointing_gesture_in_the_camera_frame_is_the_hint(client, seg_node, twins):
    from omg_seg_core.structures import mask_iou

    frame, tid, wid = twins
    ok = client.set_params("omg_seg", **{"depth.enabled": True, "pointing.topic": "/test_clicked_point"})
    assert all(r.successful for r in ok)
    time.sleep(1.0)
    info_pub = client.node.create_publisher(CameraInfo, f"{NS}/input/camera_info", 10)
    point_pub = client.node.create_publisher(PointStamped, "/test_clicked_point", 10)
    try:
        wait_matched(info_pub)
        wait_matched(point_pub)
        h = CODEC.header()
        h.frame_id = "camera_optical"
        info_pub.publish(CODEC.camera_info_msg(frame.camera, h))
        _show(client, frame)
        m = frame.panoptic == wid  # point at the twin, in 3D: its true centre
        c = next(s for s in frame.segments if s.id == wid).center_3d
        pt = PointStamped(header=h, point=Point(x=c[0], y=c[1], z=c[2]))
        point_pub.publish(pt)
        time.sleep(0.5)
        info = next(s for s in frame.segments if s.id == tid)
        r = call(client, "segment_text", text_req(f"the {info.colour} {info.shape}"))
        assert r.success and "hint point" in r.message, r.message
        assert mask_iou(_mask(r), m) >= 0.5
        pt.header.frame_id = "base_link"  # another frame: tf2 is not installed here -> a clear message
        point_pub.publish(pt)
        time.sleep(0.5)
        r = call(client, "segment_text", text_req(f"the {info.colour} {info.shape}"))
        try:
            import tf2_ros  # noqa: F401
        except ImportError:
            assert not r.success and "tf2" in r.message, r.message
    finally:
        client.node.destroy_publisher(info_pub)
        client.node.destroy_publisher(point_pub)
        client.set_params("omg_seg", **{"depth.enabled": False, "pointing.topic": ""})
