"""omg_seg_ros.cli.image_player (the demo's and the benchmark's camera): its stdin/stdout protocol and stamps."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed in this environment")

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from omg_seg_ros.msgs import image_to_rgb
from ros_helpers import ROOT

TOPIC = "/omg_seg_test/player_image"


def test_player_publishes_the_requested_frames_with_the_stamps_it_reports(client):
    # Subscribe first (the player waits for a subscriber), with its QoS: a camera publishes best effort.
    col = client.collector(Image, TOPIC, qos_profile_sensor_data)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "omg_seg_ros.cli.image_player", str(ROOT / "data/samples/robot_scene"),
                             "--topic", TOPIC, "--rate", "20", "--size", "160x120", "--encoding", "bgr8"],
                            cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        ready = proc.stdout.readline().split()
        assert ready[0] == "ready" and ready[1] == "40" and ready[2] == "160x120", ready
        proc.stdin.write("play 3 6\n")
        proc.stdin.flush()
        lines = []
        for line in proc.stdout:
            if line.startswith("done"):
                break
            lines.append(line.split())
        assert [int(p[1]) for p in lines] == [3, 4, 5]
        stamps = {(int(p[2]), int(p[3])) for p in lines}
        msgs = col.wait(lambda m: len(m) >= 3, timeout=20)
        assert {(m.header.stamp.sec, m.header.stamp.nanosec) for m in msgs} == stamps
        first = image_to_rgb(msgs[0])
        assert first.shape == (120, 160, 3) and msgs[0].encoding == "bgr8" and first.std() > 5
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        col.close()
