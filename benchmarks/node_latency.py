"""End-to-end latency of the omg_seg node over real DDS (three processes: node, camera, this client).

    scripts/with_env.sh .venv/bin/python benchmarks/node_latency.py [--sizes 320x240,640x480] [--rate 30]
        [--frames 600] [--paced 40] [--weights CKPT | --allow-random-weights] [--json bench_results/node_latency.json]
    scripts/with_env.sh .venv/bin/python benchmarks/node_latency.py --closed-loop 300 [--rounds 5]

Per input size it starts the node (config/perception.yaml, every output enabled and subscribed), an image
player publishing random frames of that size, and measures:
- paced: one frame at a time, the next only after every output of the previous arrived. Nothing queues, so
  end-to-end minus that frame's model time (from the node's diagnostics, paired by stamp) is the ROS overhead
  (DDS in, decode, message building, DDS out), per output.
- camera: frames at --rate (a camera), the node keeps up as it can: end-to-end p50/p95 per output (image stamp
  -> output received), output rate, dropped frames (node diagnostics), node CPU and memory (psutil).
Model time = the node's own per-frame set_image + task + tracking time.
Prints a table and writes JSON. Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omg_seg_ros.cli.client import ClientNode  # noqa: E402
from benchmarks.bench_util import cell, percentile  # noqa: E402
from omg_seg_ros.cli.demo import Player, _spawn, _stop, wait_active  # noqa: E402  (the demo's process helpers)

OUTPUTS = ("semantic", "instance_ids", "detections", "segments", "overlay")


def _extra_params(args: argparse.Namespace) -> list[str]:
    """`--param NAME:=VALUE` options as ros-args."""
    for p in args.param:
        if ":=" not in p:
            raise SystemExit(f"--param {p!r}: expected NAME:=VALUE")
    return [x for p in args.param for x in ("-p", p)]


class BenchClient(ClientNode):
    """Subscribes to every output; records the receive time per (output, stamp)."""

    def __init__(self) -> None:
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray
        from omg_seg_msgs.msg import SegmentArray

        super().__init__("omg_seg_bench")
        self.recv: dict[str, dict[tuple[int, int], float]] = {o: {} for o in OUTPUTS}
        types = {"semantic": Image, "instance_ids": Image, "overlay": Image, "detections": Detection2DArray,
                 "segments": SegmentArray}
        for name, t in types.items():
            self.node.create_subscription(t, f"/omg_seg/output/{name}", self._cb(name), 10)

    def _cb(self, name: str):
        def cb(msg) -> None:
            t = time.time()  # same machine and clock as the stamps (ROS system time)
            with self.lock:
                self.recv[name][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = t
                self.lock.notify_all()
        return cb

    def wait_complete(self, stamp: tuple[int, int], timeout: float) -> bool:
        """Wait until every output of `stamp` arrived (woken by each arrival, no polling); False on timeout."""
        with self.lock:
            return self.lock.wait_for(lambda: all(stamp in self.recv[o] for o in OUTPUTS), timeout)

    def latencies(self, stamps, minus: Optional[dict] = None) -> dict[str, list[float]]:
        """Per output: receive time - stamp (ms) for `stamps`, minus `minus[stamp]` ms when given."""
        with self.lock:
            return {o: [(self.recv[o][s] - (s[0] + s[1] * 1e-9)) * 1000.0 - (minus[s] if minus else 0.0)
                        for s in stamps if s in self.recv[o] and (minus is None or s in minus)] for o in OUTPUTS}


def _diag_after(client: BenchClient, seconds: float) -> dict:
    time.sleep(seconds)
    with client.lock:
        return dict(client.diag or {})


def _paced(client: BenchClient, player: Player, n: int, cycle: int = 8, pair: bool = True) -> tuple[list, dict]:
    """Send n frames one at a time; returns (stamps, {stamp: model ms of that frame}); pair=False does not wait
    for the diagnostics naming each frame (no model times; a closed loop at the node's own pace)."""
    stamps, model_of = [], {}
    for i in range(n):
        s = next(iter(player.play(i % cycle, i % cycle + 1)))
        end = time.monotonic() + 60
        client.wait_complete(s, 60.0)
        # The node's diagnostics name the last frame's stamp and model time: pair them with this frame.
        while pair and time.monotonic() < end:
            with client.lock:
                d = dict(client.diag or {})
            if abs(float(d.get("last_frame_stamp", 0)) - (s[0] + s[1] * 1e-9)) < 1e-5:
                model_of[s] = float(d["last_frame_model_ms"])
                break
            time.sleep(0.01)
        stamps.append(s)
    return stamps, model_of


def bench_size(size: tuple[int, int], args: argparse.Namespace, log_dir: Path) -> dict:
    w, h = size
    log = log_dir / f"node_{w}x{h}.log"
    node_args = ["-m", "omg_seg_ros.node", "--ros-args", "--params-file", str(ROOT / "config" / "perception.yaml"),
                 "-p", f"allow_random_weights:={'true' if args.allow_random_weights else 'false'}",
                 "-p", "diagnostics_period:=0.2", *_extra_params(args)]
    if args.weights:
        node_args += ["-p", f"weights:={args.weights}"]
    node = _spawn(node_args, log=log)
    client = player = None
    try:
        wait_active([node], [log], 600)
        client = BenchClient()
        proc = psutil.Process(node.pid)
        player = Player(["--random", "8", "--size", f"{w}x{h}", "--rate", str(args.rate)])
        time.sleep(3.0)  # outputs are built only for subscribers: let every subscription match first
        _paced(client, player, 3)  # warm-up: the first frames include lazy initialisation
        paced, model_of = _paced(client, player, args.paced)
        d_paced = _diag_after(client, 0.5)
        lat_paced = client.latencies(paced)
        over = client.latencies(paced, minus=model_of)
        # Camera rate.
        d0 = _diag_after(client, 0.0)
        rss0 = proc.memory_info().rss
        cpu0, wall0 = proc.cpu_times(), time.monotonic()
        rss_samples = []
        sampler_stop = threading.Event()

        def sample() -> None:
            while not sampler_stop.wait(2.0):
                rss_samples.append((round(time.monotonic() - wall0, 1), round(proc.memory_info().rss / 1e6, 1)))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        player.proc.stdin.write(f"loop {args.frames}\n")
        player.proc.stdin.flush()
        cam = []
        for line in player.proc.stdout:
            parts = line.split()
            if parts and parts[0] == "frame":
                cam.append((int(parts[2]), int(parts[3])))
            elif parts and parts[0] == "done":
                break
        d1 = _diag_after(client, 2.0)
        wall = time.monotonic() - wall0
        cpu1 = proc.cpu_times()
        sampler_stop.set()
        th.join()
        rss1 = proc.memory_info().rss
        lat_cam = client.latencies(cam)
        with client.lock:
            got = sorted(client.recv["segments"][s] for s in cam if s in client.recv["segments"])
        rate = (len(got) - 1) / (got[-1] - got[0]) if len(got) > 1 else 0.0
        return {
            "size": f"{w}x{h}", "publish_rate_hz": args.rate, "frames_published": len(cam),
            "paced": {"frames": len(paced), "model_p50_ms": percentile(list(model_of.values()), 50),
                      **{f"{o}_p50_ms": percentile(v, 50) for o, v in lat_paced.items()},
                      **{f"{o}_p95_ms": percentile(v, 95) for o, v in lat_paced.items()},
                      **{f"{o}_overhead_p50_ms": percentile(v, 50) for o, v in over.items()},
                      **{f"{o}_overhead_p95_ms": percentile(v, 95) for o, v in over.items()},
                      "node_internal_overhead_p50_ms": float(d_paced.get("overhead_p50_ms", "nan")),
                      "node_queue_wait_p50_ms": float(d_paced.get("queue_wait_p50_ms", "nan"))},
            "camera": {"output_rate_hz": rate,
                       "frames_received": int(d1.get("frames_received", 0)) - int(d0.get("frames_received", 0)),
                       "frames_processed": int(d1.get("frames_processed", 0)) - int(d0.get("frames_processed", 0)),
                       "frames_dropped": int(d1.get("frames_dropped", 0)) - int(d0.get("frames_dropped", 0)),
                       **{f"{o}_p50_ms": percentile(v, 50) for o, v in lat_cam.items()},
                       **{f"{o}_p95_ms": percentile(v, 95) for o, v in lat_cam.items()},
                       "model_p50_ms": float(d1.get("model_p50_ms", "nan")),
                       "queue_wait_p50_ms": float(d1.get("queue_wait_p50_ms", "nan")),
                       "node_cpu_percent": 100.0 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall,
                       "rss_start_mb": rss0 / 1e6, "rss_end_mb": rss1 / 1e6,
                       "rss_growth_mb": (rss1 - rss0) / 1e6, "rss_samples_mb": rss_samples},
            "weights": args.weights or ("random" if args.allow_random_weights else "models/omg_seg_tiny.pth"),
            "machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")},
        }
    finally:
        if player is not None:
            player.close()
        if client is not None:
            client.close()
        _stop(node)


def print_table(results: list[dict]) -> None:
    print("\nPaced (no queueing). e2e = image stamp -> output received; ROS overhead = e2e - that frame's model time")
    print(f"{'size':>8} {'model p50':>10} {'e2e seg p50':>12} {'e2e seg p95':>12} | overhead p50 (p95) ms: "
          + " ".join(f"{o:>14}" for o in ("segments", "semantic", "detections", "instance_ids", "overlay")))
    for r in results:
        p = r["paced"]
        ov = [f"{cell(p[o + '_overhead_p50_ms'])} ({cell(p[o + '_overhead_p95_ms'])})"
              for o in ("segments", "semantic", "detections", "instance_ids", "overlay")]
        print(f"{r['size']:>8} {cell(p['model_p50_ms']):>10} {cell(p['segments_p50_ms']):>12} "
              f"{cell(p['segments_p95_ms']):>12} | {'':22}" + " ".join(f"{v:>14}" for v in ov))
    print(f"\nCamera at {results[0]['publish_rate_hz']:.0f} Hz")
    print(f"{'size':>8} {'published':>9} {'received':>8} {'processed':>9} {'dropped':>8} {'out Hz':>7} {'seg p50':>8} {'seg p95':>8} "
          f"{'CPU %':>6} {'RSS MB':>7} {'dRSS MB':>8}")
    for r in results:
        c = r["camera"]
        print(f"{r['size']:>8} {r['frames_published']:>9} {c['frames_received']:>8} {c['frames_processed']:>9} {c['frames_dropped']:>8} "
              f"{c['output_rate_hz']:>7.2f} {cell(c['segments_p50_ms'], '.0f'):>8} {cell(c['segments_p95_ms'], '.0f'):>8} "
              f"{c['node_cpu_percent']:>6.0f} {c['rss_end_mb']:>7.0f} {c['rss_growth_mb']:>8.1f}")


def closed_loop(args: argparse.Namespace, log_dir: Path) -> dict:
    """The node in a closed loop on the sample robot video (320x240, generated scenes the shipped model knows):
    tracking on and one followed text target ("segment the red box", track: true); each frame is sent when the
    previous one's outputs arrived. Against it, in this process and the same run: `set_image + panoptic()` alone on
    the same frames with the backend the node chose. The two alternate in `--rounds` rounds (the node stays up and
    idle while the predictor runs alone), so a slower minute of a shared machine hits both; frames/s per round,
    medians over rounds and their ratio; the node's per-stage p50 from its diagnostics."""
    import cv2
    from omg_seg_msgs.srv import SegmentText

    from omg_seg_core.predict import build_predictor

    folder = ROOT / "data" / "samples" / "robot_scene"
    n_frames = len([p for p in folder.iterdir() if p.name.startswith("frame_")])
    frames = [cv2.imread(str(folder / f"frame_{i:03d}.jpg"))[:, :, ::-1].copy() for i in range(n_frames)]
    log = log_dir / "node_closed_loop.log"
    node = _spawn(["-m", "omg_seg_ros.node", "--ros-args", "--params-file", str(ROOT / "config" / "perception.yaml"),
                   "-p", "diagnostics_period:=0.2", *_extra_params(args)], log=log)
    client = player = None
    per_round = max(1, args.closed_loop // args.rounds)
    node_fps, alone_fps = [], []
    try:
        wait_active([node], [log], 600)
        client = BenchClient()
        player = Player([str(folder), "--rate", "100"])
        time.sleep(3.0)  # let every subscription match
        _paced(client, player, 5, cycle=n_frames)  # warm-up and a frame to request the target on
        r = client.call(SegmentText, "/omg_seg/segment_text", SegmentText.Request(text="segment the red box",
                                                                                 track=True))
        backend = _diag_after(client, 0.5).get("backend", "torch")
        pred = build_predictor("omg_seg_tiny", **({} if backend == "torch" else {"backend": backend}))
        for f in frames[:3]:
            pred.set_image(f)
            pred.panoptic()
        sent = 0
        for _ in range(args.rounds):
            t1 = time.monotonic()
            _paced(client, player, per_round, cycle=n_frames, pair=False)
            node_fps.append(per_round / (time.monotonic() - t1))
            t2 = time.monotonic()
            for i in range(per_round):
                pred.set_image(frames[(sent + i) % n_frames])
                pred.panoptic()
            alone_fps.append(per_round / (time.monotonic() - t2))
            sent += per_round
        d = _diag_after(client, 0.5)
    finally:
        if player is not None:
            player.close()
        if client is not None:
            client.close()
        _stop(node)
    stages = {k[len("stage_"):-len("_p50_ms")]: float(v) for k, v in d.items() if k.startswith("stage_")}
    node_med, alone_med = float(np.median(node_fps)), float(np.median(alone_fps))
    return {"frames": per_round * args.rounds, "rounds": args.rounds, "target_request": r.message, "backend": backend,
            "node_fps": node_med, "set_image_panoptic_fps": alone_med, "ratio": node_med / alone_med,
            "round_ratios": [n / a for n, a in zip(node_fps, alone_fps)],
            "node_fps_rounds": node_fps, "set_image_panoptic_fps_rounds": alone_fps,
            "node_model_p50_ms": float(d.get("model_p50_ms", "nan")),
            # image stamp -> outputs published, and that minus the model time (decode, waits, message building)
            "node_latency_p50_ms": float(d.get("latency_p50_ms", "nan")),
            "node_overhead_p50_ms": float(d.get("overhead_p50_ms", "nan")),
            "node_queue_wait_p50_ms": float(d.get("queue_wait_p50_ms", "nan")), "stage_p50_ms": stages}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="320x240,640x480")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    ap.add_argument("--frames", type=int, default=600, help="frames published at camera rate per size")
    ap.add_argument("--paced", type=int, default=40, help="frames sent one at a time per size")
    ap.add_argument("--allow-random-weights", action="store_true")
    ap.add_argument("--weights", default="", help="checkpoint (default: the shipped models/omg_seg_tiny.pth)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench_results" / "node_latency.json")
    ap.add_argument("--closed-loop", type=int, default=0, metavar="N",
                    help="instead: N frames of the sample video in a closed loop with one followed target, vs "
                         "set_image + panoptic() alone in the same run (frames/s, ratio, per-stage p50)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="another node parameter (repeatable), e.g. --param postprocess_threads:=0")
    ap.add_argument("--rounds", type=int, default=5, help="closed loop: alternated rounds of node and alone")
    args = ap.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    if args.closed_loop:
        res = closed_loop(args, args.json.parent)
        print(f"\nclosed loop, {res['frames']} frames in {res['rounds']} alternated rounds, backend {res['backend']}: "
              f"node {res['node_fps']:.1f} frames/s, set_image + panoptic() alone {res['set_image_panoptic_fps']:.1f} "
              f"frames/s (medians) -> {res['ratio']:.2f}x; per round " + ", ".join(f"{x:.2f}" for x in res["round_ratios"]))
        print(f"node p50 (ms): frame period {1000.0 / res['node_fps']:.1f}, image stamp -> outputs published "
              f"{res['node_latency_p50_ms']:.1f} (model {res['node_model_p50_ms']:.1f}, overhead "
              f"{res['node_overhead_p50_ms']:.1f}, queue wait {res['node_queue_wait_p50_ms']:.1f})")
        print("node stage p50 (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(res["stage_p50_ms"].items(),
                                                                                  key=lambda kv: -kv[1])))
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "closed_loop": res}, indent=1))
        print(f"wrote {args.json}")
        return 0
    results = []
    for s in args.sizes.split(","):
        w, h = (int(v) for v in s.split("x"))
        print(f"[bench] {w}x{h}: starting node ...", flush=True)
        results.append(bench_size((w, h), args, args.json.parent))
    print_table(results)
    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
