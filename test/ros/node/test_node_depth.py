"""Depth to metres over real DDS: the node pairs ~/input/depth + ~/input/camera_info with colour frames and puts
every segment, target and answer in 3D; bad depth input never stops the 2D outputs (issue: depth to metres).

Frames are generated scenes with their rendered metric depth and true 3D boxes (data/synth), sent as a RealSense
driver would (16UC1 millimetres, camera_info of the colour camera). The node runs the shipped omg-seg-tiny.
Named test_node_*: it runs after test_node.py, whose first test needs a node that has not seen a frame yet."""
from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from node_helpers import CODEC, NS, Camera, call, diag, prompt_req, text_req, wait_matched

#: Aim of the issue for clean depth is 1.5 cm median; one object through the whole node may be off more (its mask
#: from the model, the box completion): 5 cm is far below the 10-20 cm a wrong object or wrong units would give.
TOLERANCE_M = 0.05


@pytest.fixture(scope="module")
def scene3d():
    from omg_seg_core.data.synth.generator import SynthGenerator

    gen = SynthGenerator(320, 240, "heldout", seed=7)
    try:
        frame = gen.frame(3)
    finally:
        gen.close()
    return frame


@pytest.fixture(scope="module")
def depth_on(client, seg_node):
    assert client.set_params("omg_seg", **{"depth.enabled": True})[0].successful
    time.sleep(1.0)  # the re-subscription happens on the node's next executor turn
    yield
    assert client.set_params("omg_seg", **{"depth.enabled": False})[0].successful


class DepthCamera:
    """Colour + depth + camera_info publishers with one stamp per frame (as a RealSense driver)."""

    def __init__(self, client) -> None:
        self.client = client
        self.colour = Camera(client)
        node = client.node
        self.depth = node.create_publisher(Image, f"{NS}/input/depth", qos_profile_sensor_data)
        self.info = node.create_publisher(CameraInfo, f"{NS}/input/camera_info", qos_profile_sensor_data)
        wait_matched(self.depth)
        wait_matched(self.info)

    def send(self, frame, depth_msg=None, info_msg=None, send_info: bool = True, send_depth: bool = True):
        now = self.client.node.get_clock().now().to_msg()
        header = CODEC.header()
        header.stamp, header.frame_id = now, "camera_optical"
        if send_info:
            self.info.publish(info_msg or CODEC.camera_info_msg(frame.camera, header))
        if send_depth:
            msg = depth_msg or CODEC.depth_image_msg(frame.depth, header)
            msg.header = header
            self.depth.publish(msg)
            time.sleep(0.05)  # depth first: the colour frame finds it waiting
        msg = CODEC.rgb_to_image(frame.rgb, header)
        self.colour.pub.publish(msg)
        return now.sec, now.nanosec

    def close(self) -> None:
        self.colour.close()
        self.client.node.destroy_publisher(self.depth)
        self.client.node.destroy_publisher(self.info)


def _for_stamp(col, stamp, timeout=30.0):
    msgs = col.wait(lambda ms: any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp for m in ms), timeout)
    return [m for m in msgs if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp][-1]


def _send_until(cam, frame, col, tries: int = 20, **kw):
    """Send frames until one comes out on `col` (the first may race the re-subscription)."""
    for _ in range(tries):
        sent = cam.send(frame, **kw)
        try:
            return _for_stamp(col, sent, timeout=3.0)
        except TimeoutError:
            continue
    raise TimeoutError("no output for any frame sent")


def test_detections_3d_segments_and_markers_in_metres(client, depth_on, scene3d):
    from omg_seg_msgs.msg import SegmentArray
    from vision_msgs.msg import Detection3DArray
    from visualization_msgs.msg import MarkerArray

    dets = client.collector(Detection3DArray, f"{NS}/output/detections_3d")
    segs = client.collector(SegmentArray, f"{NS}/output/segments")
    marks = client.collector(MarkerArray, f"{NS}/output/markers")
    cam = DepthCamera(client)
    try:
        out = _send_until(cam, scene3d, dets)
        assert out.header.frame_id == "camera_optical"  # the colour image's header: its optical frame
        assert len(out.detections) >= 3
        truth = np.array([t.center_3d for t in scene3d.things()])
        for d in out.detections:
            p = d.bbox.center.position
            err = np.linalg.norm(truth - np.array([p.x, p.y, p.z]), axis=1).min()
            assert err < TOLERANCE_M, f"{d.results[0].hypothesis.class_id} at {p} is {err:.3f} m from every object"
            assert d.bbox.size.x > 0 and d.bbox.size.z > 0
        seg = _for_stamp(segs, (out.header.stamp.sec, out.header.stamp.nanosec))
        things = [s for s in seg.segments if s.is_thing]
        assert things and all(s.has_position and s.num_points > 0 for s in things)
        # a confirmed track's id is the same in Detection3D.id, Segment.id and ~/output/instance_ids
        assert {str(s.id) for s in things if s.has_position} >= {d.id for d in out.detections if d.id}
        m = marks.wait(lambda ms: len(ms) > 0)[-1]
        assert {mk.ns for mk in m.markers} >= {"boxes", "labels"}
        assert any(mk.text.endswith(" m") for mk in m.markers if mk.ns == "labels")
    finally:
        cam.close()
        for c in (dets, segs, marks):
            c.close()


def test_text_and_prompt_answers_carry_3d(client, depth_on, scene3d):
    from vision_msgs.msg import Detection3DArray

    dets = client.collector(Detection3DArray, f"{NS}/output/detections_3d")
    cam = DepthCamera(client)
    try:
        _send_until(cam, scene3d, dets)
    finally:
        cam.close()
        dets.close()
    target = max(scene3d.things(), key=lambda t: t.area)
    x, y, w, h = target.bbox
    resp = call(client, "segment_prompt", prompt_req(boxes=[x, y, x + w, y + h]))
    assert resp.success, resp.message
    s = resp.segments.segments[0]
    assert s.has_position
    err = np.linalg.norm(np.array([s.position.x, s.position.y, s.position.z]) - np.array(target.center_3d))
    assert err < TOLERANCE_M
    resp = call(client, "segment_text", text_req(f"the {target.colour} {target.shape}"))
    assert resp.success, resp.message
    assert resp.segments.segments and resp.segments.segments[0].has_position


@pytest.mark.parametrize("case", ["no_camera_info_first", "zero_k", "other_aspect", "unknown_encoding", "all_invalid",
                                  "nan_inf_k"])
def test_bad_depth_input_keeps_2d_outputs(client, depth_on, scene3d, case):
    """Each bad depth input: the frame still comes out in 2D, no 3D for it, and /diagnostics names the problem."""
    from omg_seg_msgs.msg import SegmentArray

    header = CODEC.header()
    info = CODEC.camera_info_msg(scene3d.camera, header)
    depth = None
    expect = {"zero_k": "focal", "nan_inf_k": "finite", "other_aspect": "aspect", "unknown_encoding": "encoding",
              "all_invalid": "invalid", "no_camera_info_first": "camera_info"}[case]
    if case in ("zero_k", "nan_inf_k"):
        info.k = [0.0] * 9 if case == "zero_k" else [float("nan")] + [0.0] * 8
        info.p = [0.0] * 12
    elif case == "other_aspect":
        depth = CODEC.depth_image_msg(scene3d.depth[:, :200], header)
    elif case == "unknown_encoding":
        depth = CODEC.rgb_to_image(scene3d.rgb, header)
    elif case == "all_invalid":
        depth = CODEC.depth_image_msg(np.full(scene3d.depth.shape, np.nan, np.float32), header)
    if case == "no_camera_info_first":  # re-subscribing forgets the calibration received so far
        for on in (False, True):
            assert client.set_params("omg_seg", **{"depth.enabled": on})[0].successful
            time.sleep(0.5)
    before = int(diag(client).get("depth_problems", 0))
    segs = client.collector(SegmentArray, f"{NS}/output/segments")
    cam = DepthCamera(client)
    try:
        if case != "no_camera_info_first":  # camera_info and depth travel on separate topics: have the (bad)
            end = time.monotonic() + 10.0     # calibration in the node before the frames that should use it
            while diag(client).get("camera_info_received") != "True" and time.monotonic() < end:
                cam.info.publish(info)
        out = _send_until(cam, scene3d, segs, depth_msg=depth, info_msg=info,
                          send_info=case != "no_camera_info_first")
        assert out.segments and not any(s.has_position for s in out.segments)
        d = diag(client)
        assert int(d["depth_problems"]) > before and expect in d["last_depth_problem"], d
    finally:
        cam.close()
        segs.close()


def test_colour_without_depth_goes_out_in_2d_and_is_counted(client, depth_on, scene3d):
    from omg_seg_msgs.msg import SegmentArray

    before = int(diag(client).get("frames_without_depth", 0))
    segs = client.collector(SegmentArray, f"{NS}/output/segments")
    cam = DepthCamera(client)
    try:
        out = _send_until(cam, scene3d, segs, send_depth=False)
        assert out.segments and not any(s.has_position for s in out.segments)
        assert int(diag(client)["frames_without_depth"]) > before
    finally:
        cam.close()
        segs.close()


def test_depth_parameters_are_validated(client, seg_node):
    res = client.set_params("omg_seg", **{"depth.max_m": 0.05})[0]  # below depth.min_m (0.1)
    assert not res.successful and "depth.min_m" in res.reason
    res = client.set_params("omg_seg", **{"depth.max_skew_ms": float("nan")})[0]
    assert not res.successful
    assert seg_node.alive()
