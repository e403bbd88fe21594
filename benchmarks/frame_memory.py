"""Peak memory of the node for one large frame: the real node process, one frame over DDS, every output subscribed.

    scripts/with_env.sh .venv/bin/python benchmarks/frame_memory.py --sizes 640x480 4000x3000 [--out F.json]

For each size, a fresh node (shipped model, default parameters) is started and warmed up with a small frame, then
ONE frame of that size is published and every output is waited for. Reported from /proc/<pid>/status: the peak
resident memory (VmHWM) before and after the frame, the increase, and the increase in units of the frame's own
size (W x H x 3 bytes). Prints a table and writes JSON (default benchmarks/results/frame_memory.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omg_seg_ros.cli.client import ClientNode  # noqa: E402
from omg_seg_ros.cli.demo import _spawn, _stop, wait_active  # noqa: E402


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0  # MiB
    return float("nan")


class FrameClient(ClientNode):
    def __init__(self) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from omg_seg_msgs.msg import SegmentArray

        super().__init__("omg_seg_frame_memory")
        self.got: dict[str, set] = {}
        for name, typ in (("segments", SegmentArray), ("semantic", Image), ("instance_ids", Image),
                          ("overlay", Image)):
            self.got[name] = set()
            self.node.create_subscription(typ, f"/omg_seg/output/{name}", self._cb(name), 10)
        self.pub = self.node.create_publisher(Image, "/omg_seg/input/image",
                                              QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))

    def _cb(self, name: str):
        def cb(msg) -> None:
            with self.lock:
                self.got[name].add((msg.header.stamp.sec, msg.header.stamp.nanosec))
        return cb

    def send(self, rgb: np.ndarray) -> tuple[int, int]:
        from omg_seg_ros.msgs import MessageCodec

        codec = MessageCodec.rclpy()
        msg = codec.rgb_to_image(rgb, codec.header(frame_id="camera_optical"))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(msg)
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def wait(self, stamp: tuple[int, int], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if all(stamp in s for s in self.got.values()):
                    return True
            time.sleep(0.05)
        return False


def scene(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A generated robot-workspace scene of the shipped model's world, resized to w x h (objects to segment)."""
    import cv2

    from omg_seg_core.data.synth import SynthGenerator

    gen = SynthGenerator(640, 480, split="heldout", seed=seed)
    try:
        rgb = gen.frame(0).rgb
    finally:
        gen.close()
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def measure(size: tuple[int, int], log_dir: Path) -> dict:
    w, h = size
    log = log_dir / f"node_memory_{w}x{h}.log"
    # reliable: a frame beyond the 16 MB shared-memory segment (config/perception_fastdds.xml) goes over
    # fragmented UDP, where best effort loses it
    node = _spawn(["-m", "omg_seg_ros.node", "--ros-args", "--params-file", str(ROOT / "config" / "perception.yaml"),
                   "-p", "qos.reliability:=reliable"], log=log)
    client = None
    try:
        wait_active([node], [log], 300)
        client = FrameClient()
        time.sleep(3.0)  # let the subscriptions match (outputs are built only for subscribers)
        small = scene(320, 240, seed=1)
        for _ in range(3):  # warm-up: lazy initialisation happens on the first frames
            ok = client.wait(client.send(small), 60.0)
        hwm0, rss0 = _vm(node.pid, "VmHWM"), _vm(node.pid, "VmRSS")
        frame = scene(w, h)
        t1 = time.monotonic()
        ok = client.wait(client.send(frame), 300.0)
        dt = time.monotonic() - t1
        hwm1 = _vm(node.pid, "VmHWM")
        frame_mib = w * h * 3 / 2**20
        return {"size": f"{w}x{h}", "outputs_received": ok, "seconds": round(dt, 2), "frame_mib": round(frame_mib, 1),
                "rss_before_mib": round(rss0, 1), "peak_before_mib": round(hwm0, 1), "peak_after_mib": round(hwm1, 1),
                "peak_increase_mib": round(hwm1 - hwm0, 1),
                "peak_increase_in_frames": round((hwm1 - hwm0) / frame_mib, 1)}
    finally:
        if client is not None:
            client.close()
        _stop(node)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["640x480", "4000x3000"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "frame_memory.json")
    args = ap.parse_args(argv)
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows = [measure(tuple(int(v) for v in s.split("x")), log_dir) for s in args.sizes]
    print(f"{'size':>10} {'frame MiB':>9} {'peak before':>11} {'peak after':>10} {'increase':>9} {'x frame':>7} {'s':>6}")
    for r in rows:
        print(f"{r['size']:>10} {r['frame_mib']:>9} {r['peak_before_mib']:>11} {r['peak_after_mib']:>10} "
              f"{r['peak_increase_mib']:>9} {r['peak_increase_in_frames']:>7} {r['seconds']:>6}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "command": " ".join(["benchmarks/frame_memory.py", *sys.argv[1:]])},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
