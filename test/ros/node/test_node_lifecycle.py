"""Lifecycle of the omg_seg node over real DDS: deactivate/activate, cleanup/configure, refusing to start
without weights. Runs after test_node.py on the same node process (session fixture)."""
from __future__ import annotations

import time

from omg_seg_msgs.msg import SegmentArray

from ros_helpers import DISCOVERY_TIMEOUT, start_node
from test_node import NS, Camera, call, stamp, text_req


def _frames_reach_outputs(client, timeout: float) -> bool:
    col = client.collector(SegmentArray, f"{NS}/output/segments")
    cam = Camera(client, match=False)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            cam.send()
            time.sleep(0.5)
            if any(stamp(m) in set(cam.stamps) for m in col.msgs):
                return True
        return False
    finally:
        cam.close()
        col.close()


def test_deactivate_stops_io_and_activate_resumes(client, seg_node):
    assert client.state("omg_seg") == "active"
    assert client.lifecycle("omg_seg", "deactivate")
    assert client.state("omg_seg") == "inactive"
    r = call(client, "segment_text", text_req("segment the box"))
    assert not r.success and "not active" in r.message
    assert not _frames_reach_outputs(client, timeout=4.0)
    assert client.lifecycle("omg_seg", "activate")
    assert _frames_reach_outputs(client, timeout=90.0)


def test_configure_fails_clearly_with_missing_weights_then_recovers(client, seg_node):
    assert client.set_params("omg_seg", weights="/nonexistent/omg.pth")[0].successful
    assert client.lifecycle("omg_seg", "deactivate")
    assert client.lifecycle("omg_seg", "cleanup")
    assert client.state("omg_seg") == "unconfigured"
    assert not client.lifecycle("omg_seg", "configure")
    assert client.state("omg_seg") == "unconfigured"
    assert "checkpoint '/nonexistent/omg.pth' not found" in seg_node.log()
    assert client.set_params("omg_seg", weights="")[0].successful
    assert client.lifecycle("omg_seg", "configure")
    assert client.lifecycle("omg_seg", "activate")
    assert _frames_reach_outputs(client, timeout=90.0)


def test_node_refuses_to_start_without_weights(client, tmp_path_factory):
    """No checkpoint for the model and random weights not allowed: stays unconfigured, says what to set."""
    proc = start_node(tmp_path_factory, "omg_seg_noweights",
                      ["-p", "model:=omg_seg_convl", "-p", "allow_random_weights:=false"])
    try:
        end = time.monotonic() + 120
        while "configure failed" not in proc.log() and time.monotonic() < end and proc.alive():
            time.sleep(0.5)
        log = proc.log()
        assert proc.alive(), log
        assert "no weights for model 'omg_seg_convl'" in log and "allow_random_weights" in log, log
        deadline = time.monotonic() + DISCOVERY_TIMEOUT
        state = None
        while time.monotonic() < deadline and state != "unconfigured":
            state = client.state("omg_seg_noweights")
        assert state == "unconfigured"
    finally:
        assert proc.stop() == 0


def test_autostart_false_waits_for_a_lifecycle_manager(client, tmp_path_factory):
    """autostart:=false: nothing is loaded until configure; configure + activate over the real services."""
    name = "omg_seg_managed"
    proc = start_node(tmp_path_factory, name, ["-p", "autostart:=false"])
    try:
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline and state != "unconfigured":
            try:
                state = client.state(name)
            except TimeoutError:
                assert proc.alive(), proc.log()
        assert state == "unconfigured"
        assert "configured: model" not in proc.log()  # no model loaded yet
        assert client.lifecycle(name, "configure") and client.state(name) == "inactive"
        assert client.lifecycle(name, "activate") and client.state(name) == "active"
        assert f"/{name}/input/image" in proc.log()
    finally:
        assert proc.stop() == 0
