"""The omg_seg node over real DDS: outputs and stamps, services, bad input, parameters, QoS, targets.

One node process serves the whole module (model load is the slow part); tests run in file order and the
first one relies on no frame having been sent yet. Lifecycle transitions are in test_node_lifecycle.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from node_helpers import CODEC, NS, H, W, Camera, call, diag, object_scene, prompt_req, scene, srv, stamp, text_req
from omg_seg_core.tracking import TrackerConfig
from omg_seg_ros.msgs import image_to_numpy, segments_from_msg
from omg_seg_ros.params import latched_qos
from ros_helpers import DISCOVERY_TIMEOUT

# ---------------------------------------------------------------------------------------------- tests
def test_requests_before_the_first_frame_get_a_clear_error(client, seg_node):
    r = call(client, "segment_text", text_req("segment the red box"))
    assert not r.success and "no image received yet" in r.message
    r = call(client, "segment_prompt", prompt_req(points=[(10, 10)]))
    assert not r.success and "no image received yet" in r.message


def test_label_info_is_latched_for_late_subscribers(client, seg_node):
    from vision_msgs.msg import LabelInfo

    col = client.collector(LabelInfo, f"{NS}/output/label_info", latched_qos())
    info = col.wait(timeout=DISCOVERY_TIMEOUT)[-1]
    col.close()
    names = [c.class_name for c in info.class_map]
    assert names[:3] == ["box", "ball", "cylinder"] and names[-1] == "unlabeled"


def test_every_output_carries_the_input_header(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray
    from vision_msgs.msg import Detection2DArray

    cols = {n: client.collector(t, f"{NS}/output/{n}") for n, t in [
        ("semantic", Image), ("instance_ids", Image), ("overlay", Image), ("detections", Detection2DArray),
        ("segments", SegmentArray)]}
    cam = Camera(client)
    try:
        end = time.monotonic() + 90
        while not all(c.msgs for c in cols.values()) and time.monotonic() < end:
            cam.send()
            time.sleep(0.4)
        sent = set(cam.stamps)
        for name, col in cols.items():
            msgs = col.wait(timeout=30)
            assert all(stamp(m) in sent for m in msgs), f"{name}: output stamp is not an input stamp"
            assert all(m.header.frame_id == "camera_optical" for m in msgs), name
        sem, inst, ov = cols["semantic"].msgs[-1], cols["instance_ids"].msgs[-1], cols["overlay"].msgs[-1]
        assert (sem.encoding, sem.height, sem.width) == ("mono16", H, W)
        assert (inst.encoding, ov.encoding, ov.height, ov.width) == ("mono16", "rgb8", H, W)
        # Same frame in every output: instance-image values are exactly the detection ids (plus 0).
        by_stamp = {stamp(m): m for m in cols["detections"].msgs}
        segs = {stamp(m): m for m in cols["segments"].msgs}
        common = [m for m in cols["instance_ids"].msgs if stamp(m) in by_stamp and stamp(m) in segs]
        assert common, "no frame seen on instance_ids, detections and segments alike"
        m = common[-1]
        ids = set(np.unique(image_to_numpy(m)).tolist()) - {0}
        det_ids = {int(d.id) for d in by_stamp[stamp(m)].detections if d.id}
        assert ids <= det_ids
        seg = segs[stamp(m)]
        masks = segments_from_msg(seg).masks
        assert masks.shape[1:] == (H, W)
        sem_map = image_to_numpy(cols["semantic"].msgs[-1])
        assert sem_map.max() <= 65535
    finally:
        cam.close()
        for c in cols.values():
            c.close()


def test_prompt_and_text_reuse_the_cached_frame(client, seg_node):
    time.sleep(2.0)  # let the worker finish a frame still in the mailbox from the previous test
    before = int(diag(client)["image_passes"])
    r = call(client, "segment_text", text_req("segment the red box", max_results=2))
    assert r.success, r.message
    assert r.segments.task == "text" and len(r.segments.segments) <= 2
    assert (r.segments.image_height, r.segments.image_width) == (H, W)
    r2 = call(client, "segment_prompt", prompt_req(points=[(100, 80)], boxes=[20, 20, 120, 100]))
    assert r2.success, r2.message
    assert len(r2.segments.segments) == 2 and r2.segments.segments[0].class_id >= -1
    assert stamp(r2.segments) == stamp(r.segments) != (0, 0)  # both on the latest processed frame
    after = int(diag(client)["image_passes"])
    assert after == before, "a prompt/text call without an image ran the backbone again"


def test_request_with_its_own_image(client, seg_node):
    before = int(diag(client)["image_passes"])
    img = CODEC.rgb_to_image(scene(99)[:120, :160], CODEC.header(), "bgr8")
    img.header.frame_id = "other"
    r = call(client, "segment_prompt", prompt_req(points=[(50, 50)], image=img))
    assert r.success, r.message
    assert (r.segments.image_height, r.segments.image_width) == (120, 160)
    assert r.segments.header.frame_id == "other"
    assert int(diag(client)["image_passes"]) == before + 1


@pytest.mark.parametrize("name,req,match", [
    ("segment_prompt", lambda: prompt_req(points=[(float("nan"), 5)]), "NaN"),
    ("segment_prompt", lambda: prompt_req(points=[(5000, 5)]), "outside"),
    ("segment_prompt", lambda: prompt_req(boxes=[1, 2, 3]), "multiple of 4"),
    ("segment_prompt", lambda: prompt_req(), "no prompt"),
    ("segment_prompt", lambda: prompt_req(points=[(5, 5)], labels=[0]), "positive"),
    ("segment_text", lambda: text_req("   "), "empty text"),
    ("segment_text", lambda: text_req("box", image=Image(height=2, width=2, encoding="yuv422", step=4,
                                                         data=bytes(8))), "unknown image encoding"),
    ("set_vocabulary", lambda: srv("set_vocabulary").Request(things=[], stuff=[]), "empty vocabulary"),
    ("set_vocabulary", lambda: srv("set_vocabulary").Request(things=["a", "a"]), "duplicate"),
    ("remove_target", lambda: srv("remove_target").Request(id=424242), "no target"),
])
def test_bad_requests_get_error_responses(client, seg_node, name, req, match):
    r = call(client, name, req())
    assert not r.success and match in r.message, r.message
    assert seg_node.alive()


def test_bad_input_images_are_dropped_with_a_warning(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray

    cam = Camera(client)
    before = int(diag(client)["bad_frames"])
    bad_step = CODEC.rgb_to_image(scene(3), CODEC.header(), "rgb8")
    bad_step.step = 10
    empty = Image(encoding="rgb8")
    wrong_enc = CODEC.rgb_to_image(scene(3), CODEC.header(), "rgb8")
    wrong_enc.encoding = "32FC1"
    short = CODEC.rgb_to_image(scene(3), CODEC.header(), "rgb8")
    short.data = bytes(short.data)[:1000]
    for m in (bad_step, empty, wrong_enc, short):
        cam.send(msg=m)
        time.sleep(0.7)  # one at a time: the mailbox would otherwise (correctly) drop some unprocessed
    end = time.monotonic() + 30
    while int(diag(client)["bad_frames"]) < before + 4 and time.monotonic() < end:
        pass
    assert int(diag(client)["bad_frames"]) == before + 4
    assert "dropping input image" in seg_node.log()
    col = client.collector(SegmentArray, f"{NS}/output/segments")
    try:
        deadline = time.monotonic() + 60
        while not col.msgs and time.monotonic() < deadline:
            cam.send(msg=CODEC.rgb_to_image(scene(4), CODEC.header(), "rgb8"))
            time.sleep(0.5)
        assert col.wait(timeout=30)
    finally:
        col.close()
        cam.close()


def test_a_camera_that_changes_resolution_is_followed(client, seg_node):
    """Tracker and targets reset on a size change; outputs take the new size; the node keeps serving."""
    from omg_seg_msgs.msg import SegmentArray

    col = client.collector(SegmentArray, f"{NS}/output/segments")
    cam = Camera(client)
    try:
        small = scene(8)[::2, ::2].copy()  # 160x120
        end = time.monotonic() + 60
        sent = set()
        while not any(stamp(m) in sent for m in col.msgs) and time.monotonic() < end:
            sent.add(cam.send(small))
            time.sleep(0.5)
        m = [m for m in col.wait(timeout=30) if stamp(m) in sent][-1]
        assert (m.image_height, m.image_width) == (H // 2, W // 2)
        assert all(s.roi.x_offset + s.roi.width <= W // 2 for s in m.segments)
        assert seg_node.alive()
    finally:
        cam.close()
        col.close()


def test_stale_frames_are_dropped_and_counted(client, seg_node):
    d0 = diag(client)
    cam = Camera(client)
    for _ in range(40):
        cam.send()
        time.sleep(0.01)  # far faster than the model: the mailbox must drop, not queue
    cam.close()
    time.sleep(2.0)
    d1 = diag(client)
    received = int(d1["frames_received"]) - int(d0["frames_received"])
    processed = int(d1["frames_processed"]) - int(d0["frames_processed"])
    dropped = int(d1["frames_dropped"]) - int(d0["frames_dropped"])
    assert received > 0 and dropped > 0
    assert processed + dropped <= received + 1


def test_thresholds_change_at_run_time_and_bad_values_are_rejected(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray

    res = client.set_params("omg_seg", mask_threshold=1.5)
    assert not res[0].successful and "mask_threshold" in res[0].reason
    # A negative fraction asks for the model's default (the checkpoint's tuned iou_thr; docs/ros.md).
    assert client.set_params("omg_seg", iou_thr=-1.0)[0].successful
    res = client.set_params("omg_seg", iou_thr=1.2)
    assert not res[0].successful and "iou_thr" in res[0].reason
    res = client.set_params("omg_seg", task="bogus")
    assert not res[0].successful and "task" in res[0].reason
    res = client.set_params("omg_seg", prompt_source="sam")
    assert not res[0].successful and "prompt_source" in res[0].reason
    assert client.set_params("omg_seg", prompt_source="decoder")[0].successful
    assert client.set_params("omg_seg", prompt_source="auto")[0].successful
    col = client.collector(SegmentArray, f"{NS}/output/segments")
    cam = Camera(client)
    try:
        # object_mask_thr = 1.0 drops every query (scores are <= 1): the next frames must be empty.
        assert client.set_params("omg_seg", object_mask_thr=1.0)[0].successful
        t_set = cam.send()
        # objects tracked before are still re-found for tracking.recover_max_gap frames after their last
        # detection (recover_missed, docs/tracking.md): let those frames pass first
        gap = TrackerConfig().recover_max_gap
        end = time.monotonic() + 60
        while sum(stamp(m) > t_set for m in col.msgs) <= gap and time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
        col.clear()
        end = time.monotonic() + 60
        while not col.msgs and time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
        assert all(len(m.segments) == 0 for m in col.wait(timeout=30) if stamp(m) > t_set)
        assert client.set_params("omg_seg", object_mask_thr=0.0)[0].successful
        time.sleep(1.0)
        col.clear()
        end = time.monotonic() + 60
        while not any(len(m.segments) for m in col.msgs) and time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
        assert any(len(m.segments) for m in col.msgs), "segments did not come back after lowering the threshold"
    finally:
        cam.close()
        col.close()


def test_outputs_can_be_switched_off_at_run_time(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray

    segs = client.collector(SegmentArray, f"{NS}/output/segments")
    over = client.collector(Image, f"{NS}/output/overlay")
    cam = Camera(client)
    try:
        assert client.set_params("omg_seg", **{"outputs.overlay": False})[0].successful
        t_off = cam.send()
        time.sleep(1.0)
        end = time.monotonic() + 60
        while len([m for m in segs.msgs if stamp(m) > t_off]) < 2 and time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
        assert len([m for m in segs.msgs if stamp(m) > t_off]) >= 2
        assert not [m for m in over.msgs if stamp(m) > t_off], "overlay published while switched off"
        assert client.set_params("omg_seg", **{"outputs.overlay": True})[0].successful
        t_on = cam.send()
        end = time.monotonic() + 60
        while not [m for m in over.msgs if stamp(m) >= t_on] and time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
        assert [m for m in over.msgs if stamp(m) >= t_on]
    finally:
        cam.close()
        segs.close()
        over.close()


def test_vocabulary_changes_at_run_time(client, seg_node, tmp_path):
    from vision_msgs.msg import LabelInfo

    col = client.collector(LabelInfo, f"{NS}/output/label_info", latched_qos())
    try:
        r = call(client, "set_vocabulary", srv("set_vocabulary").Request(things=["mug", "red box"], stuff=["floor"]))
        assert r.success and r.num_classes == 3, r.message
        col.wait(lambda m: [c.class_name for c in m[-1].class_map][:3] == ["mug", "red box", "floor"], 30)
        vocab = tmp_path / "v.yaml"
        vocab.write_text("things:\n  - bottle,flask\n  - cone\nstuff:\n  - wall\n  - table\n")
        assert client.set_params("omg_seg", vocabulary_file=str(vocab))[0].successful
        col.wait(lambda m: [c.class_name for c in m[-1].class_map][:4] == ["bottle", "cone", "wall", "table"], 30)
        res = client.set_params("omg_seg", vocabulary_file=str(tmp_path / "missing.yaml"))
        assert not res[0].successful
    finally:
        col.close()


def test_qos_reliability_switch(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray

    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    assert client.set_params("omg_seg", **{"qos.reliability": "reliable"})[0].successful
    col = client.collector(SegmentArray, f"{NS}/output/segments")
    try:
        rel = Camera(client, qos=reliable)  # matches only once the node re-subscribed with RELIABLE
        time.sleep(2.0)
        be = Camera(client, match=False)    # best effort: incompatible with a RELIABLE subscription
        time.sleep(3.0)
        assert be.pub.get_subscription_count() == 0
        col.clear()
        for _ in range(3):
            be.send()
            time.sleep(0.5)
        time.sleep(2.0)
        assert not col.msgs, "a best-effort publisher reached a RELIABLE subscription"
        t = rel.send()
        col.wait(lambda m: any(stamp(x) == t for x in m), timeout=60)
        be.close()
        rel.close()
    finally:
        assert client.set_params("omg_seg", **{"qos.reliability": "best_effort"})[0].successful
        col.close()
    cam = Camera(client)  # default sensor-data QoS matches again
    cam.close()


def test_compressed_input(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray

    assert client.set_params("omg_seg", **{"input.compressed": True})[0].successful
    col = client.collector(SegmentArray, f"{NS}/output/segments")
    try:
        cam = Camera(client, compressed=True)
        end = time.monotonic() + 60
        while not col.msgs and time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
        m = col.wait(timeout=30)[-1]
        assert stamp(m) in set(cam.stamps) and (m.image_height, m.image_width) == (H, W)
        cam.close()
    finally:
        assert client.set_params("omg_seg", **{"input.compressed": False})[0].successful
        col.close()


def test_prompt_target_is_followed_and_removed(client, seg_node):
    from omg_seg_msgs.msg import SegmentArray

    cam = Camera(client)
    col = client.collector(SegmentArray, f"{NS}/output/targets")
    try:
        rgb, box = object_scene()
        t = cam.send(rgb)
        time.sleep(1.5)
        r = call(client, "segment_prompt", prompt_req(boxes=box, track=True))
        assert r.success, r.message
        ids = [s.id for s in r.segments.segments if s.id > 0]
        assert len(ids) == 1, r.message
        end = time.monotonic() + 60
        while not col.msgs and time.monotonic() < end:
            cam.send(rgb)
            time.sleep(0.5)
        m = col.wait(timeout=30)[-1]
        assert m.task == "targets" and [s.id for s in m.segments] == ids and stamp(m) > t
        r = call(client, "remove_target", srv("remove_target").Request(id=ids[0]))
        assert r.success, r.message
        r = call(client, "remove_target", srv("remove_target").Request(id=ids[0]))
        assert not r.success
        r = call(client, "reset_tracks", Trigger.Request())
        assert r.success
    finally:
        col.close()
        cam.close()


def test_diagnostics_report_the_pipeline(client, seg_node):
    d = diag(client)
    for key in ("rate_hz", "latency_p50_ms", "frames_dropped", "backend", "model", "device"):
        assert key in d
    # backend auto (the default): the faster of torch and onnxruntime on this CPU, timed and logged at configure
    assert d["backend"] in ("torch", "onnxruntime") and d["model"] == "omg_seg_tiny"
    assert "backend auto: image graph" in seg_node.log() and f"-> {d['backend']}" in seg_node.log()
    assert float(d["latency_p50_ms"]) > 0
    # where a frame's time goes (docs/ros.md): decode, model stages, tracking, each output's building + publishing
    for stage in ("decode", "preprocess", "image_graph", "postprocess", "tracker", "recovery", "out_segments"):
        assert float(d[f"stage_{stage}_p50_ms"]) >= 0, stage
