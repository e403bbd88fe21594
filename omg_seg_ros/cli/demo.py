"""`make demo`: the node on the shipped model, a sample video over real DDS, a text request and a click.

    python -m omg_seg_ros.cli.demo --output demo_output [--rate 5] [--allow-random-weights]

Three processes talk over DDS (random ROS_DOMAIN_ID, localhost only): the omg_seg node, an image player
(omg_seg_ros.cli.image_player) publishing data/samples/robot_scene, and this client. Half-way through the video the
client asks ~/segment_text "segment the red box" and ~/segment_prompt with a click on another object (both with
track=true, so they are followed in the second half). The player also publishes the sample's registered depth and
camera_info (depth.enabled), so the red box's answer says where it is in metres, printed next to the truth. At the
end, on a generated scene with two identical objects (sent as a request image): a text request with a pointing hint
picks the one pointed at, the other is taught as an exemplar ("my <shape>"), ~/segment_like finds both. It
writes to --output: overlay_XXX.png per processed frame, demo.gif, text_result.png, prompt_result.png,
exemplar_result.png, summary.json, node.log; and prints what it found (IoU with the generator's ground truth), the
output rate and the end-to-end latency.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from omg_seg_core.config import DATA_ROOT, PACKAGE_ROOT
from omg_seg_core.structures import mask_iou
from omg_seg_ros.cli.client import ClientNode

SAMPLES = DATA_ROOT / "data" / "samples" / "robot_scene"
NS = "/omg_seg"


def _spawn(args: list[str], log: Optional[Path] = None, pipe: bool = False) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(PACKAGE_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen([sys.executable, *args], cwd=PACKAGE_ROOT, env=env, text=True,
                            stdin=subprocess.PIPE if pipe else subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT if log else None)


def _stop(proc: Optional[subprocess.Popen]) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_active(nodes: list[subprocess.Popen], logs: list[Path], timeout_s: float) -> float:
    """Wait until every node's log says "active: listening" (the node answers lifecycle services only once its
    model is loaded); returns the seconds waited. RuntimeError with the log's tail when a node exits, logs
    "configure failed" or the time runs out."""
    t0 = time.monotonic()
    while not all("active: listening" in lg.read_text() for lg in logs):
        bad = [lg for node, lg in zip(nodes, logs) if node.poll() is not None or "configure failed" in lg.read_text()]
        if bad or time.monotonic() - t0 > timeout_s:
            raise RuntimeError("node did not become active:\n" + (bad or logs)[0].read_text()[-3000:])
        time.sleep(0.5)
    return time.monotonic() - t0


class DemoClient(ClientNode):
    """Client node: collects outputs (by stamp) and calls services."""

    def __init__(self) -> None:
        from sensor_msgs.msg import Image
        from omg_seg_msgs.msg import SegmentArray

        super().__init__("omg_seg_demo")
        self.overlays: dict[tuple[int, int], tuple[float, object]] = {}
        self.segments: dict[tuple[int, int], object] = {}
        self.targets: dict[tuple[int, int], object] = {}
        self.node.create_subscription(Image, f"{NS}/output/overlay", self._store(self.overlays, True), 10)
        self.node.create_subscription(SegmentArray, f"{NS}/output/segments", self._store(self.segments), 10)
        self.node.create_subscription(SegmentArray, f"{NS}/output/targets", self._store(self.targets), 10)

    def _store(self, table: dict, timed: bool = False):
        def cb(msg) -> None:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            now = self.node.get_clock().now().nanoseconds * 1e-9
            with self.lock:
                table[key] = (now, msg) if timed else msg
        return cb

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{NS}/get_state", GetState.Request(), timeout=10.0).current_state.label


class Player:
    """The image player process; `play` returns {stamp: frame index}."""

    def __init__(self, player_args: list[str]) -> None:
        self.proc = _spawn(["-m", "omg_seg_ros.cli.image_player", *player_args, "--topic", f"{NS}/input/image"], pipe=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready"):
            raise RuntimeError(f"image player failed: {line!r}")
        self.n_frames = int(line.split()[1])

    def play(self, start: int, end: int) -> dict[tuple[int, int], int]:
        self.proc.stdin.write(f"play {start} {end}\n")
        self.proc.stdin.flush()
        stamps = {}
        for line in self.proc.stdout:
            parts = line.split()
            if parts and parts[0] == "frame":
                stamps[(int(parts[2]), int(parts[3]))] = int(parts[1])
            elif parts and parts[0] == "done":
                break
        return stamps

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _stop(self.proc)


def ground_truth(folder: Path, index: int, cls: str, colour: Optional[str] = None):
    """(mask, bbox xywh) of the first GT thing of class `cls` (and colour) in frame `index`, or (None, None)."""
    import cv2

    meta = json.loads((folder / "sequence.json").read_text())
    pan = cv2.imread(str(folder / f"panoptic_{index:03d}.png"), cv2.IMREAD_UNCHANGED)
    for s in meta["frames"][index]["segments"]:
        if s["class"] == cls and (colour is None or s["colour"] == colour):
            return pan == s["id"], s["bbox"]
    return None, None


def largest_other_thing(folder: Path, index: int, exclude: tuple[str, str]):
    """(mask, "colour class") of the largest GT thing in frame `index` other than `exclude` (class, colour)."""
    import cv2

    meta = json.loads((folder / "sequence.json").read_text())
    pan = cv2.imread(str(folder / f"panoptic_{index:03d}.png"), cv2.IMREAD_UNCHANGED)
    best = None
    for s in meta["frames"][index]["segments"]:
        if s["is_thing"] and (s["class"], s["colour"]) != exclude:
            m = pan == s["id"]
            if best is None or m.sum() > best[0].sum():
                best = (m, f"{s['colour']} {s['class']}")
    return best if best is not None else (None, None)


def _wait_output(client: DemoClient, stamp: tuple[int, int], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with client.lock:
            if stamp in client.segments:
                return True
        time.sleep(0.05)
    return False


def _report_3d(r, folder: Path, index: int) -> Optional[dict]:
    """Print where the text answer is (camera optical frame, metres) next to the red box's true centre."""
    truth = next((s for s in json.loads((folder / "sequence.json").read_text())["frames"][index]["segments"]
                  if s["class"] == "box" and s["colour"] == "red"), None)
    if not r.success or not r.segments.segments or not r.segments.segments[0].has_position or truth is None:
        print("[demo] no 3D answer for the red box (is depth arriving? see depth_* in /diagnostics)")
        return None
    p = r.segments.segments[0].position
    got, true = np.array([p.x, p.y, p.z]), np.array(truth["center_3d"])
    err = float(np.linalg.norm(got - true))
    print(f"[demo] the red box is at x {got[0]:+.3f} y {got[1]:+.3f} z {got[2]:.3f} m in "
          f"{r.segments.header.frame_id} (truth x {true[0]:+.3f} y {true[1]:+.3f} z {true[2]:.3f} m; "
          f"{err * 100:.1f} cm off)")
    return {"position": got.tolist(), "truth": true.tolist(), "error_m": err}


def _render_response(rgb: np.ndarray, msg, path: Path) -> None:
    import cv2
    from omg_seg_core.structures import Segments
    from omg_seg_core.viz.overlay import render_overlay
    from omg_seg_ros.msgs import segments_from_msg

    masks = segments_from_msg(msg).masks
    seg = Segments(masks, [s.score for s in msg.segments], [s.class_id for s in msg.segments],
                   [s.class_name for s in msg.segments], [True] * len(msg.segments),
                   track_ids=[s.id for s in msg.segments])
    cv2.imwrite(str(path), render_overlay(rgb, seg)[:, :, ::-1])


def run(args: argparse.Namespace) -> dict:
    import cv2
    from geometry_msgs.msg import Point
    from omg_seg_msgs.srv import SegmentPrompt, SegmentText
    from omg_seg_ros.msgs import image_to_numpy, segments_from_msg

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("overlay_*.png"):
        old.unlink()
    node_args = ["-m", "omg_seg_ros.node", "--ros-args", "--params-file", str(DATA_ROOT / "config" / "perception.yaml"),
                 "-p", f"model:={args.model}", "-p", "depth.enabled:=true",
                 "-p", f"allow_random_weights:={'true' if args.allow_random_weights else 'false'}"]
    if args.weights:  # an empty override ("weights:=") is a parse error in rcl; the YAML default is ''
        node_args += ["-p", f"weights:={args.weights}"]
    print(f"[demo] ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}; starting the node (log: {out / 'node.log'})")
    node = _spawn(node_args, log=out / "node.log")
    client = player = None
    try:
        client = DemoClient()
        log = out / "node.log"
        waited = wait_active([node], [log], args.timeout)
        if client.state() != "active":
            raise RuntimeError("node is not active:\n" + log.read_text()[-2000:])
        print(f"[demo] node active after {waited:.1f} s; playing {args.samples.name} at {args.rate} Hz")
        player = Player([str(args.samples), "--rate", str(args.rate), "--depth-topic", f"{NS}/input/depth",
                         "--camera-info-topic", f"{NS}/input/camera_info"])
        half = player.n_frames // 2
        stamps = player.play(0, half)
        last = max(stamps, key=lambda s: stamps[s])
        if not _wait_output(client, last, 120.0):
            raise RuntimeError("no output for the last frame of the first half")
        idx = stamps[last]
        rgb = cv2.imread(str(args.samples / f"frame_{idx:03d}.jpg"))[:, :, ::-1].copy()
        summary: dict = {"frames_published": 0, "requests": {}}
        # Text request on the latest processed frame (cached features: no second backbone pass).
        t = time.monotonic()
        r = client.call(SegmentText, f"{NS}/segment_text", SegmentText.Request(text="segment the red box", track=True))
        dt = (time.monotonic() - t) * 1000
        gt, _ = ground_truth(args.samples, idx, "box", "red")
        best = max((mask_iou(m, gt) for m in segments_from_msg(r.segments).masks), default=0.0) if r.success and gt is not None else 0.0
        print(f"[demo] segment_text 'segment the red box' on frame {idx}: {r.message} | IoU with the red box "
              f"{best:.2f} | {dt:.0f} ms round trip")
        summary["requests"]["text"] = {"frame": idx, "success": r.success, "message": r.message, "iou": best,
                                       "round_trip_ms": dt}
        summary["requests"]["text"]["position_3d"] = _report_3d(r, args.samples, idx)
        if r.success:
            _render_response(rgb, r.segments, out / "text_result.png")
        # A click on the largest other object in view.
        gt_mug, click_name = largest_other_thing(args.samples, idx, exclude=("box", "red"))
        if gt_mug is not None:
            ys, xs = np.nonzero(gt_mug)
            k = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))  # a pixel of the mug near its centre
            click = (float(xs[k]), float(ys[k]))
            t = time.monotonic()
            r = client.call(SegmentPrompt, f"{NS}/segment_prompt", SegmentPrompt.Request(
                points=[Point(x=click[0], y=click[1])], point_labels=[1], track=True))
            dt = (time.monotonic() - t) * 1000
            got = segments_from_msg(r.segments).masks
            best = mask_iou(got[0], gt_mug) if r.success and len(got) else 0.0
            print(f"[demo] segment_prompt click ({click[0]:.0f}, {click[1]:.0f}) on the {click_name}: {r.message} | IoU "
                  f"{best:.2f} | {dt:.0f} ms round trip")
            summary["requests"]["prompt"] = {"frame": idx, "click": click, "object": click_name, "success": r.success,
                                             "message": r.message, "iou": best, "round_trip_ms": dt}
            if r.success:
                _render_response(rgb, r.segments, out / "prompt_result.png")
        stamps.update(player.play(half, player.n_frames))
        _wait_output(client, max(stamps, key=lambda s: stamps[s]), 120.0)
        summary["requests"]["lookalikes"] = _lookalikes(client, out)
        time.sleep(1.5)  # one more diagnostics period
        summary["frames_published"] = len(stamps)
        return _finish(client, stamps, args, out, summary, image_to_numpy)
    finally:
        if player is not None:
            player.close()
        if client is not None:
            client.close()
        _stop(node)


def _lookalikes(client: "DemoClient", out: Path) -> dict:
    """Two identical objects in a generated scene (sent as the request image): "the <colour> <shape>" + a point on
    the right one picks it; the other is taught as "my <shape>"; ~/segment_like finds both; "segment my <shape>"
    finds the taught one. Prints and returns what happened."""
    from geometry_msgs.msg import Point
    from omg_seg_msgs.srv import AddExemplar, SegmentLike, SegmentText
    from omg_seg_core.train.data import click_point
    from omg_seg_core.train.lookalike_eval import lookalike_frames
    from omg_seg_ros.msgs import MessageCodec, segments_from_msg

    frame, tid, wid = next(iter(lookalike_frames(1, seed=3)))
    codec = MessageCodec.rclpy()
    info = next(s for s in frame.segments if s.id == tid)
    target, twin = frame.panoptic == tid, frame.panoptic == wid
    (tx, ty), (wx, wy) = click_point(target), click_point(twin)
    phrase, name = f"the {info.colour} {info.shape}", f"my {info.shape}"
    image = codec.rgb_to_image(frame.rgb, codec.header())
    r = client.call(SegmentText, f"{NS}/segment_text", SegmentText.Request(
        text=phrase, image=image, hint_points=[Point(x=float(tx), y=float(ty))]))
    iou = mask_iou(segments_from_msg(r.segments).masks[0], target) if r.success and r.segments.segments else 0.0
    print(f"[demo] two identical objects ({info.colour} {info.shape}) in a generated scene; '{phrase}' + pointing at "
          f"one: {r.message} | IoU with the pointed one {iou:.2f}")
    a = client.call(AddExemplar, f"{NS}/add_exemplar", AddExemplar.Request(
        name=name, points=[Point(x=float(wx), y=float(wy))]))
    print(f"[demo] add_exemplar '{name}' (a click on the other one): {a.message}")
    like = client.call(SegmentLike, f"{NS}/segment_like", SegmentLike.Request(name=name))
    found = segments_from_msg(like.segments).masks if like.success and like.segments.segments else []
    both = sum(any(mask_iou(m, g) >= 0.5 for m in found) for g in (target, twin))
    print(f"[demo] segment_like '{name}': {like.message} | {both} of the 2 look-alikes among them")
    mine = client.call(SegmentText, f"{NS}/segment_text", SegmentText.Request(text=f"segment {name}"))
    got = segments_from_msg(mine.segments).masks if mine.success and mine.segments.segments else []
    print(f"[demo] segment_text 'segment {name}': {mine.message} | IoU with the taught one "
          f"{mask_iou(got[0], twin) if len(got) else 0.0:.2f}")
    if len(got):
        _render_response(frame.rgb, mine.segments, out / "exemplar_result.png")
    return {"phrase": phrase, "hint_iou": iou, "taught": a.success, "like_found": both,
            "like_message": like.message, "mine_message": mine.message}


def _finish(client: DemoClient, stamps: dict, args, out: Path, summary: dict, image_to_numpy) -> dict:
    import cv2
    from PIL import Image as PILImage

    from omg_seg_ros.msgs import segments_from_msg

    with client.lock:
        segs = {s: m for s, m in client.segments.items() if s in stamps}
        overlays = {s: v for s, v in client.overlays.items() if s in stamps}
        targets = {s: m for s, m in client.targets.items() if s in stamps}
        diag = dict(client.diag or {})
    frames = []
    lat_by_frame: dict[int, float] = {}  # frame index -> image stamp to overlay received, ms
    for s in sorted(overlays, key=lambda s: stamps[s]):
        t_recv, msg = overlays[s]
        lat_by_frame[stamps[s]] = (t_recv - (s[0] + s[1] * 1e-9)) * 1000.0
        img = image_to_numpy(msg)
        cv2.imwrite(str(out / f"overlay_{stamps[s]:03d}.png"), img[:, :, ::-1])
        frames.append(PILImage.fromarray(img))
    if frames:
        frames[0].save(out / "demo.gif", save_all=True, append_images=frames[1:], duration=int(1000 / args.rate),
                       loop=0)
    lat = list(lat_by_frame.values())
    recv = sorted(v[0] for v in overlays.values())
    fps = (len(recv) - 1) / (recv[-1] - recv[0]) if len(recv) > 1 else 0.0
    target_iou = []
    for s, m in targets.items():
        gt, _ = ground_truth(args.samples, stamps[s], "box", "red")
        masks = segments_from_msg(m).masks
        if gt is not None and len(masks):
            target_iou.append(mask_iou(masks[0], gt))
    summary.update({
        "frames_processed": len(overlays), "output_fps": fps,
        "latency_ms_p50": float(np.percentile(lat, 50)) if lat else None,
        "latency_ms_p95": float(np.percentile(lat, 95)) if lat else None,
        "latency_ms_per_frame": {k: round(v, 1) for k, v in lat_by_frame.items()},
        "red_box_target_frames": len(target_iou),
        "red_box_target_mean_iou": float(np.mean(target_iou)) if target_iou else None,
        "node_diagnostics": diag})
    if segs:
        s_last = max(segs, key=lambda s: stamps[s])
        found = [f"{x.class_name}" + (f" #{x.id}" if x.id and x.is_thing else "") + f" ({x.score:.2f})"
                 for x in segs[s_last].segments]
        summary["last_frame"] = {"frame": stamps[s_last], "segments": found}
        print(f"[demo] frame {stamps[s_last]} ({len(found)} segments): {', '.join(found) or 'nothing'}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    dropped = summary["frames_published"] - len(overlays)
    print(f"[demo] {summary['frames_published']} frames published at {args.rate} Hz, {len(overlays)} processed"
          + (f" ({dropped} dropped as stale: the node always takes the newest frame)" if dropped else "")
          + f", output {fps:.1f} FPS")
    if lat:
        print(f"[demo] end-to-end latency (image stamp -> overlay received) p50 {summary['latency_ms_p50']:.0f} ms, "
              f"p95 {summary['latency_ms_p95']:.0f} ms; model p50 {diag.get('model_p50_ms', '?')} ms")
    if target_iou:
        print(f"[demo] red box followed as a target in {len(target_iou)} later frames, mean IoU "
              f"{summary['red_box_target_mean_iou']:.2f}")
    print(f"[demo] wrote {len(frames)} overlays, demo.gif, text_result.png, prompt_result.png, exemplar_result.png, "
          f"summary.json to {out}")
    return summary


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="demo_output")
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--rate", type=float, default=5.0, help="publishing rate of the sample video (Hz)")
    ap.add_argument("--model", default="omg_seg_tiny")
    ap.add_argument("--weights", default="")
    ap.add_argument("--allow-random-weights", action="store_true",
                    help="run an UNTRAINED model when no checkpoint exists (plumbing check only)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the node to start")
    args = ap.parse_args(argv)
    # Set before any DDS participant exists: an isolated, local-only ROS graph for this demo.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    try:
        run(args)
    except (RuntimeError, TimeoutError) as e:
        print(f"[demo] FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
