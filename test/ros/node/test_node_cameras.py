"""Several cameras through ONE node and model over real DDS (issue: every camera through one model).

A node named `multicam` serves cameras front, left, right (its own process, started for this module and stopped at
its end, so its /diagnostics never reach the other modules' helpers). The cameras publish at different rates and
sizes, and the right one stops halfway: every camera's outputs keep their own stamps and frame ids, the silence of
the right camera does not slow the others, services on each camera answer about that camera's latest frame.
The launch file's camera handling is checked statically (launch_ros is not installable here), as in
test_launch_config.py. Named test_node_*: it runs after test_node.py (whose first test needs a fresh node)."""
from __future__ import annotations

import ast
import threading
import time

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from node_helpers import CODEC, object_scene, prompt_req, scene, srv, stamp, text_req, wait_matched
from ros_helpers import ROOT, Collector, running_node, start_node

NAME = "multicam"
NS = f"/{NAME}"
#: camera -> (publishing rate Hz, frame size (H, W)); the left camera's frames have another aspect (another
#: padded size: its own image-graph call), the right one stops halfway through the run.
CAMERAS = {"front": (6.0, (240, 320)), "left": (3.0, (200, 200)), "right": (3.0, (240, 320))}
RUN_S = 12.0


@pytest.fixture(scope="module")
def multicam(client, tmp_path_factory):
    with running_node(client, tmp_path_factory, NAME, ["-p", "cameras:=[front, left, right]",
                                                       "-p", "batch_window_ms:=5.0"]) as proc:
        yield proc


class Publisher:
    """One camera's images at a fixed rate from a thread; frame_id '<camera>_optical'; records what it sent."""

    def __init__(self, client, camera: str, rate: float, size: tuple[int, int]) -> None:
        self.client, self.camera, self.period = client, camera, 1.0 / rate
        self.pub = client.node.create_publisher(Image, f"{NS}/{camera}/input/image", qos_profile_sensor_data)
        wait_matched(self.pub)
        h, w = size
        self.frames = [np.ascontiguousarray(scene(k)[:h, :w]) for k in range(4)]
        self.sent: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Publisher":
        self._thread.start()
        return self

    def send(self, rgb: np.ndarray) -> tuple[int, int]:
        msg = CODEC.rgb_to_image(rgb, CODEC.header(), "rgb8")
        msg.header.frame_id = f"{self.camera}_optical"
        msg.header.stamp = self.client.node.get_clock().now().to_msg()
        self.pub.publish(msg)
        self.sent.append(stamp(msg))
        return self.sent[-1]

    def _run(self) -> None:
        k = 0
        while not self._stop.wait(self.period):
            self.send(self.frames[k % len(self.frames)])
            k += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.stop()
        self.client.node.destroy_publisher(self.pub)


class TimedCollector(Collector):
    """A Collector that also notes when each message arrived (time.monotonic())."""

    def __init__(self, client, msg_type, topic: str) -> None:
        self.times: list[float] = []
        super().__init__(client.node, msg_type, topic, 10)

    def _cb(self, msg) -> None:
        self.times.append(time.monotonic())
        super()._cb(msg)


def _call(client, name: str, req):
    return client.call(srv(name), f"{NS}/{name}", req)


def _diag(client, timeout: float = 10.0) -> dict[str, dict[str, str]]:
    """camera -> values of this node's next /diagnostics statuses."""
    from diagnostic_msgs.msg import DiagnosticArray

    col = client.collector(DiagnosticArray, "/diagnostics")
    try:
        msgs = col.wait(lambda m: any(s.name.startswith(f"{NAME}: ") for a in m for s in a.status), timeout)
        arr = [a for a in msgs if any(s.name.startswith(f"{NAME}: ") for s in a.status)][-1]
        return {kv_of(s)["camera"]: kv_of(s) | {"_name": s.name} for s in arr.status if s.name.startswith(NAME)}
    finally:
        col.close()


def kv_of(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_cameras_keep_their_own_stamps_and_a_stopped_camera_slows_nobody(client, multicam):
    from omg_seg_msgs.msg import SegmentArray

    cols = {c: TimedCollector(client, SegmentArray, f"{NS}/{c}/output/segments") for c in CAMERAS}
    overlays = {c: client.collector(Image, f"{NS}/{c}/output/overlay") for c in CAMERAS}
    pubs = {c: Publisher(client, c, rate, size) for c, (rate, size) in CAMERAS.items()}
    try:
        for p in pubs.values():
            p.start()
        t0 = time.monotonic()
        time.sleep(RUN_S / 2)
        pubs["right"].stop()  # the right camera goes silent halfway
        t_half = time.monotonic()
        time.sleep(RUN_S / 2)
        for p in pubs.values():
            p.stop()
        time.sleep(1.5)
        for c, (_, (h, w)) in CAMERAS.items():
            msgs = cols[c].wait(timeout=10)
            sent = set(pubs[c].sent)
            assert all(stamp(m) in sent for m in msgs), f"{c}: an output carries another camera's stamp"
            assert {m.header.frame_id for m in msgs} == {f"{c}_optical"}, c
            assert all((m.image_height, m.image_width) == (h, w) for m in msgs), c
            ov = overlays[c].wait(timeout=10)
            assert all(stamp(m) in sent and m.header.frame_id == f"{c}_optical" for m in ov), c
        # right: nothing after it stopped (no stale re-publishing); front and left go on at least as fast
        assert not [t for t in cols["right"].times if t > t_half + 2.0]
        for c in ("front", "left"):
            before = [t for t in cols[c].times if t0 + 2.0 <= t < t_half]  # 2 s of start-up left out
            after = [t for t in cols[c].times if t_half + 1.0 <= t < t_half + RUN_S / 2]
            rate_before = len(before) / (t_half - t0 - 2.0)
            rate_after = len(after) / (RUN_S / 2 - 1.0)
            assert rate_after >= 0.7 * rate_before, f"{c}: {rate_before:.2f} Hz -> {rate_after:.2f} Hz after right stopped"
        d = _diag(client)
        assert set(d) == set(CAMERAS)
        assert {v["_name"] for v in d.values()} == {f"{NAME}: {c} pipeline" for c in CAMERAS}
        assert float(d["front"]["batch_size_mean"]) > 1.0, "the cameras' frames never ran as one batch"
        for c in CAMERAS:
            assert int(d[c]["frames_processed"]) > 0 and d[c]["input_topic"] == f"{NS}/{c}/input/image"
        assert int(d["front"]["frames_received"]) > int(d["right"]["frames_received"])
    finally:
        for p in pubs.values():
            p.close()
        for col in list(cols.values()) + list(overlays.values()):
            col.close()


def test_services_answer_about_the_named_cameras_latest_frame(client, multicam):
    from omg_seg_msgs.msg import SegmentArray

    pubs = {c: Publisher(client, c, 1.0, size) for c, (_, size) in CAMERAS.items()}
    col = client.collector(SegmentArray, f"{NS}/left/output/segments")
    try:
        rgb, box = object_scene()
        last = {c: p.send(np.ascontiguousarray(rgb[:p.frames[0].shape[0], :p.frames[0].shape[1]]))
                for c, p in pubs.items()}
        col.wait(lambda m: any(stamp(x) == last["left"] for x in m), timeout=30)
        time.sleep(1.0)
        for c, (_, (h, w)) in CAMERAS.items():
            r = _call(client, "segment_prompt", prompt_req(points=[(w // 2, h // 2)], camera=c))
            assert r.success, r.message
            assert stamp(r.segments) == last[c] and r.segments.header.frame_id == f"{c}_optical"
            assert (r.segments.image_height, r.segments.image_width) == (h, w)
        r = _call(client, "segment_text", text_req("segment the box", camera="right"))
        assert r.success and stamp(r.segments) == last["right"], r.message
        r = _call(client, "segment_prompt", prompt_req(points=[(5, 5)]))  # '' = the first camera (front)
        assert r.success and r.segments.header.frame_id == "front_optical", r.message
        r = _call(client, "segment_prompt", prompt_req(points=[(5, 5)], camera="back"))
        assert not r.success and "unknown camera 'back'" in r.message and "front" in r.message
        # targets are per camera: one followed on the front camera is not the left camera's
        r = _call(client, "segment_prompt", prompt_req(boxes=box, track=True, camera="front"))
        assert r.success, r.message
        ids = [s.id for s in r.segments.segments if s.id > 0]
        assert ids, r.message
        r = _call(client, "remove_target", srv("remove_target").Request(id=ids[0], camera="left"))
        assert not r.success and "no target" in r.message
        r = _call(client, "remove_target", srv("remove_target").Request(id=ids[0], camera="front"))
        assert r.success, r.message
        assert _call(client, "reset_tracks", Trigger.Request()).success
        # exemplars: one book for every camera (taught on front, found on right), answers on the named camera
        r = _call(client, "add_exemplar", srv("add_exemplar").Request(name="my box", boxes=box, camera="front"))
        assert r.success and r.example.header.frame_id == "front_optical", r.message
        r = _call(client, "segment_like", srv("segment_like").Request(name="my box", camera="right"))
        assert r.success and len(r.segments.segments) >= 1, r.message  # the right camera saw the same scene
        assert stamp(r.segments) == last["right"] and r.segments.header.frame_id == "right_optical"
        r = _call(client, "segment_like", srv("segment_like").Request(name="my box", camera="back"))
        assert not r.success and "unknown camera 'back'" in r.message
        r = _call(client, "remove_exemplar", srv("remove_exemplar").Request(name=""))
        assert r.success and r.removed == 1, r.message
    finally:
        col.close()
        for p in pubs.values():
            p.close()


def test_vocabulary_is_one_for_every_camera(client, multicam):
    from omg_seg_ros.params import latched_qos
    from vision_msgs.msg import LabelInfo

    r = _call(client, "set_vocabulary", srv("set_vocabulary").Request(things=["box", "ball"], stuff=["floor"]))
    assert r.success and r.num_classes == 3, r.message
    for c in CAMERAS:  # every camera's latched label_info carries the new class list
        col = client.collector(LabelInfo, f"{NS}/{c}/output/label_info", latched_qos())
        try:
            info = col.wait(lambda m: any(len(x.class_map) == 4 for x in m), timeout=20)[-1]
            assert [x.class_name for x in info.class_map][:3] == ["box", "ball", "floor"]
        finally:
            col.close()


def test_camera_parameters_are_checked(client, multicam):
    res = client.set_params(NAME, cameras=["front", "front"])
    assert not res[0].successful and "duplicate" in res[0].reason
    res = client.set_params(NAME, cameras=["front", "9left"])
    assert not res[0].successful and "not a valid camera name" in res[0].reason
    res = client.set_params(NAME, limits__max_cameras=2)
    assert not res[0].successful and "limits.max_cameras" in res[0].reason
    res = client.set_params(NAME, batch_window_ms=-1.0)
    assert not res[0].successful
    assert client.set_params(NAME, batch_window_ms=2.0)[0].successful


def test_a_node_with_bad_camera_names_says_why(client, tmp_path_factory):
    proc = start_node(tmp_path_factory, "badcams", ["-p", "cameras:=[front, front]"])
    try:
        end = time.monotonic() + 120
        while "configure failed" not in proc.log() and time.monotonic() < end and proc.alive():
            time.sleep(0.3)
        assert "configure failed: cameras: duplicate name(s) ['front']" in proc.log()
        assert "active: listening" not in proc.log()
    finally:
        proc.stop()


# ---- launch file (static: launch_ros is not installable here) ----------------------------------------------------
def _launch_functions() -> dict:
    """The launch file's pure helpers (camera_names, camera_topic, camera_remappings + REMAPPINGS), compiled alone."""
    path = ROOT / "launch" / "perception.launch.py"
    tree = ast.parse(path.read_text())
    keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name.startswith("camera_"))
            or (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "REMAPPINGS")]
    ns: dict = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), ns)
    return ns


def test_launch_maps_a_camera_list_to_the_parameter_and_remappings():
    f = _launch_functions()
    assert f["camera_names"]("front, left,right") == ["front", "left", "right"]
    assert f["camera_names"]("") == [""]
    topics = {"image_topic": "/{camera}/color/image_raw", "depth_topic": "/camera/aligned_depth_to_color/image_raw",
              "camera_info_topic": "/camera/color/camera_info"}
    remaps = dict(f["camera_remappings"](["front", "left"], topics, depth=False))
    assert remaps == {"~/front/input/image": "/front/color/image_raw",
                      "~/front/input/image/compressed": "/front/color/image_raw/compressed",
                      "~/left/input/image": "/left/color/image_raw",
                      "~/left/input/image/compressed": "/left/color/image_raw/compressed"}
    with pytest.raises(ValueError, match="one topic per camera"):  # depth on: each camera needs its own
        f["camera_remappings"](["front", "left"], topics, depth=True)
    topics.update(depth_topic="/f/depth,/l/depth", camera_info_topic="/{camera}/info")
    remaps = dict(f["camera_remappings"](["front", "left"], topics, depth=True))
    assert remaps["~/left/input/depth"] == "/l/depth" and remaps["~/front/input/camera_info"] == "/front/info"
    # one unnamed camera: today's remappings
    single = dict(f["camera_remappings"]([""], {"image_topic": "/camera/image_raw", "depth_topic": "/d",
                                                  "camera_info_topic": "/i"}, depth=False))
    assert single == {"~/input/image": "/camera/image_raw", "~/input/image/compressed": "/camera/image_raw/compressed",
                      "~/input/depth": "/d", "~/input/camera_info": "/i"}
    with pytest.raises(ValueError, match="3 topics for 2"):
        f["camera_topic"]("/a,/b,/c", "front", 0, 2)
    with pytest.raises(ValueError, match="is one topic for 3 cameras"):
        f["camera_topic"]("/camera/image_raw", "front", 0, 3)


def test_launch_remaps_the_cameras_of_the_parameters_file(tmp_path):
    """No `cameras` launch argument: the node takes the parameters file's list, so the launch remaps those."""
    f = _launch_functions()
    assert f["camera_names_in_params_file"](str(ROOT / "config" / "perception.yaml")) == [""]
    p = tmp_path / "robot.yaml"
    p.write_text("omg_seg:\n  ros__parameters:\n    cameras: [front, left]\n    backend: onnxruntime\n")
    assert f["camera_names_in_params_file"](str(p)) == ["front", "left"]
    p.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n")
    assert f["camera_names_in_params_file"](str(p)) == [""]
    assert f["camera_names_in_params_file"](str(tmp_path / "missing.yaml")) == [""]


# ---- the executor (executor.py): no busy loop on callbacks queued behind a busy thread pool ---------------------
def test_executor_does_not_resubmit_a_queued_callback():
    """One pool thread held by a slow callback, a timer firing meanwhile: rclpy's MultiThreadedExecutor submits the
    queued timer task again on every spin (its futures pile up while it spins, holding the GIL); NodeExecutor
    submits each task once."""
    import rclpy
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor

    from omg_seg_ros.executor import NodeExecutor

    def submissions(executor_type) -> tuple[int, int]:
        """(pool submissions, distinct tasks submitted) in 0.5 s of spinning."""
        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        node = rclpy.create_node(f"executor_probe_{executor_type.__name__}", context=ctx)
        ex = executor_type(num_threads=2, context=ctx)
        ex.add_node(node)
        submitted: list = []
        real_submit = ex._executor.submit
        ex._executor.submit = lambda fn, *a: (submitted.append(fn), real_submit(fn, *a))[1]
        group = ReentrantCallbackGroup()
        for _ in range(2):  # hold both pool threads
            node.create_timer(0.01, lambda: time.sleep(0.7), callback_group=group)
        node.create_timer(0.01, lambda: None, callback_group=group)  # queued behind them
        try:
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.05)
            time.sleep(1.0)  # the held and queued callbacks finish before the node goes
        finally:
            ex.shutdown(timeout_sec=2.0)
            node.destroy_node()
            rclpy.shutdown(context=ctx)
        return len(submitted), len({id(t) for t in submitted})

    n, distinct = submissions(NodeExecutor)
    assert n == distinct, f"NodeExecutor submitted {n} times for {distinct} tasks"
    n, distinct = submissions(MultiThreadedExecutor)
    assert n > 2 * distinct, "rclpy no longer re-submits queued tasks: executor.py can go"
