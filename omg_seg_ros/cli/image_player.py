"""A camera stand-in for the demo and the latency benchmark: publishes frames over real DDS from its own process.

    python -m omg_seg_ros.cli.image_player --topic /omg_seg/input/image --rate 10 [--size 640x480] [DIR | --random N]
        [--depth-topic /omg_seg/input/depth --camera-info-topic /omg_seg/input/camera_info]

With the depth topics and a DIR holding depth_XXX.png (uint16 mm) and a sequence.json "camera", each frame's
depth (16UC1) and the camera's CameraInfo go out just before the colour image, with the same stamp (a RealSense
driver's aligned depth).

It waits until a subscriber has matched, then reads commands on stdin, one per line:
    play START END      publish frames START..END-1 at --rate (stamped with the current time)
    loop N              publish N frames cycling through all frames at --rate
    quit
and prints one line per published frame: "frame INDEX SEC NANOSEC" (the stamp), then "done" after each
command, so the controlling process can map output stamps back to frame indices. Frames are pre-encoded
once so publishing costs the same for every frame (what a camera driver does).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np


def load_frames(folder: Optional[Path], random_n: int, size: Optional[tuple[int, int]]) -> list[np.ndarray]:
    """RGB uint8 frames from `folder` (frame_*.jpg/png, sorted) or `random_n` random frames; resized to size."""
    import cv2

    if folder is not None:
        files = sorted(p for p in Path(folder).iterdir() if p.name.startswith("frame_"))
        if not files:
            raise SystemExit(f"no frame_* images in {folder}")
        frames = [cv2.imread(str(p))[:, :, ::-1] for p in files]
    else:
        rng = np.random.default_rng(0)
        w, h = size or (320, 240)
        frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(max(1, random_n))]
    if size is not None:
        frames = [np.ascontiguousarray(cv2.resize(f, size, interpolation=cv2.INTER_AREA)) if
                  (f.shape[1], f.shape[0]) != size else f for f in frames]
    return [np.ascontiguousarray(f) for f in frames]


def load_depth(folder: Optional[Path], n: int):
    """(uint16 mm depth images [H, W] of frames 0..n-1, PinholeCamera) from DIR/depth_XXX.png + sequence.json."""
    import json

    import cv2

    from omg_seg_core.spatial import PinholeCamera

    if folder is None or not (Path(folder) / "sequence.json").exists():
        raise SystemExit("--depth-topic needs a DIR with depth_XXX.png and sequence.json (its 'camera')")
    cam = json.loads((Path(folder) / "sequence.json").read_text()).get("camera")
    files = sorted(Path(folder).glob("depth_*.png"))
    if cam is None or len(files) < n:
        raise SystemExit(f"{folder}: no camera in sequence.json or fewer depth images than frames")
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in files[:n]], PinholeCamera(**cam)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--random", type=int, default=0, help="publish N random frames instead of a folder")
    ap.add_argument("--topic", default="/omg_seg/input/image")
    ap.add_argument("--rate", type=float, default=10.0, help="frames per second")
    ap.add_argument("--size", default="", help="WxH to resize to")
    ap.add_argument("--encoding", default="rgb8")
    ap.add_argument("--frame-id", default="camera_optical")
    ap.add_argument("--reliable", action="store_true", help="RELIABLE instead of sensor-data QoS")
    ap.add_argument("--depth-topic", default="", help="also publish DIR/depth_XXX.png here (16UC1 mm)")
    ap.add_argument("--camera-info-topic", default="", help="and the sequence.json camera as CameraInfo here")
    args, ros_args = ap.parse_known_args(argv)
    size = tuple(int(v) for v in args.size.split("x")) if args.size else None
    frames = load_frames(args.folder, args.random, size)
    depths, camera = load_depth(args.folder, len(frames)) if args.depth_topic else ([], None)

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from omg_seg_ros.msgs import MessageCodec

    rclpy.init(args=ros_args)
    node = rclpy.create_node("omg_seg_image_player")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE) if args.reliable else qos_profile_sensor_data
    pub = node.create_publisher(Image, args.topic, qos)
    codec = MessageCodec.rclpy()
    msgs = [codec.rgb_to_image(f, codec.header(), args.encoding) for f in frames]
    depth_msgs = [codec.numpy_to_image(d, "16UC1", codec.header()) for d in depths]
    depth_pub = node.create_publisher(Image, args.depth_topic, qos) if depth_msgs else None
    info_pub = info_msg = None
    if depth_msgs and args.camera_info_topic:
        from sensor_msgs.msg import CameraInfo

        info_pub = node.create_publisher(CameraInfo, args.camera_info_topic, qos)
        info_msg = codec.camera_info_msg(camera, codec.header())
    try:
        end = time.monotonic() + 60.0
        while pub.get_subscription_count() == 0:
            if time.monotonic() > end:
                print("error no subscriber", flush=True)
                return 1
            time.sleep(0.05)
        print(f"ready {len(msgs)} {frames[0].shape[1]}x{frames[0].shape[0]}", flush=True)
        period = 1.0 / args.rate
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] == "play":
                order = list(range(int(cmd[1]), min(int(cmd[2]), len(msgs))))
            elif cmd[0] == "loop":
                order = [i % len(msgs) for i in range(int(cmd[1]))]
            else:
                print(f"error unknown command {cmd[0]}", flush=True)
                continue
            t_next = time.monotonic()
            for i in order:
                t_next += period
                msg = msgs[i]
                msg.header.frame_id = args.frame_id
                msg.header.stamp = node.get_clock().now().to_msg()
                if depth_pub is not None:
                    for extra, p in ((info_msg, info_pub), (depth_msgs[i], depth_pub)):
                        if extra is not None:
                            extra.header = msg.header
                            p.publish(extra)
                pub.publish(msg)
                print(f"frame {i} {msg.header.stamp.sec} {msg.header.stamp.nanosec}", flush=True)
                time.sleep(max(0.0, t_next - time.monotonic()))
            print("done", flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
