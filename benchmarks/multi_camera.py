"""One node serving N cameras vs N separate nodes on the same machine (issue: every camera through one model).

    scripts/with_env.sh .venv/bin/python benchmarks/multi_camera.py [--cameras 1 2 4] [--sizes 320x240 640x480]
        [--rate 30] [--seconds 20] [--warmup 8] [--backend onnxruntime] [--device cpu] [--cpu-threads 0]
        [--json benchmarks/results/multi_camera.json]

Per image size and camera count N, two set-ups run one after the other: ONE node with parameter
cameras: [cam0 .. camN-1], and N node processes with one (unnamed) camera each (N = 1: the same set-up, run once).
A publisher process sends every camera's frames (a generated video per camera: a moving robot-workspace scene the
shipped model finds objects in, tracks persist from frame to frame, played forth and back) at --rate Hz per
camera, the cameras' clocks out of phase as real cameras are, faster than 2 CPU cores serve them: the nodes run
flat out and their one-slot mailboxes drop what they cannot take, as on a robot. This process subscribes to every
camera's ~/output/segments (the only output built: outputs nobody subscribes to are not) and, after --warmup s,
measures for --seconds s:
- memory: the node processes' RSS and PSS summed (PSS shares the pages several processes map, e.g. the libraries'
  code, among them; RSS counts them in every process), the largest of one sample per second;
- GPU memory of the node processes (nvidia-smi) when a GPU is used (--device cuda);
- total frames/s: segments messages received per second over all cameras;
- per-camera latency: image stamp -> segments received, p50 / p95 over every camera's frames (per camera in JSON).
Every node runs the shipped omg_seg_tiny with the same --backend (default onnxruntime, what backend auto picks on
this CPU; auto itself would time the backends at start-up while the other nodes load) and cpu_threads 0 (the
libraries' default: all cores; --cpu-threads sets it for every node), as a robot's launch would. Prints a table and
writes JSON.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omg_seg_ros.cli.client import ClientNode  # noqa: E402
from benchmarks.bench_util import cell, percentile, write_json  # noqa: E402
from omg_seg_ros.cli.demo import _spawn, _stop, wait_active  # noqa: E402  (the demo's process helpers)


# ---------------------------------------------------------------------------------------------- publisher process
#: Frames of each camera's generated video (a moving robot-workspace scene; tracks persist across frames).
SEQUENCE = 40


def publish(topics: list[str], size: tuple[int, int], rate: float) -> int:
    """Publisher process: every topic at `rate` Hz, topic i's clock offset by i/(n rate); prints 'ready'."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from omg_seg_core.data.synth import SynthGenerator
    from omg_seg_ros.msgs import MessageCodec

    codec = MessageCodec.rclpy()
    gen = SynthGenerator(size[0], size[1], split="heldout", seed=11)
    try:  # camera i: video sequence i, played forth and back (no jump when it loops, as a robot's view)
        videos = [[codec.rgb_to_image(f.rgb, codec.header(), "rgb8") for f in gen.sequence(i, SEQUENCE)]
                  for i in range(len(topics))]
    finally:
        gen.close()
    videos = [v + v[-2:0:-1] for v in videos]
    rclpy.init()
    node = rclpy.create_node(f"multicam_bench_publisher_{os.getpid()}")
    pubs = [node.create_publisher(Image, t, qos_profile_sensor_data) for t in topics]
    print("ready", flush=True)
    period, n = 1.0 / rate, len(topics)
    t0, k = time.monotonic(), 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            for i, pub in enumerate(pubs):  # camera i's frame k is due at t0 + (k + i / n) * period
                due = t0 + (k + i / n) * period
                if stop.wait(max(0.0, due - time.monotonic())):
                    break
                msg = videos[i][k % len(videos[i])]
                msg.header.stamp = node.get_clock().now().to_msg()
                msg.header.frame_id = f"cam{i}_optical"
                try:
                    pub.publish(msg)
                except _rclpy.RCLError:  # SIGINT: rclpy's handler shut the context down
                    return 0
            k += 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------------------------------------- measuring client
class Listener(ClientNode):
    """Every camera's ~/output/segments: receive time per (topic, stamp); the nodes' latest diagnostics."""

    def __init__(self, topics: list[str]) -> None:
        from omg_seg_msgs.msg import SegmentArray

        super().__init__(f"multicam_bench_{os.getpid()}")
        self.recv: dict[str, list[tuple[float, float]]] = {t: [] for t in topics}  # (receive time, stamp) s
        self.status: dict[str, dict[str, str]] = {}  # status name -> values
        for t in topics:
            self.node.create_subscription(SegmentArray, t, self._cb(t), 10)

    def _on_diag(self, msg) -> None:
        with self.lock:
            for st in msg.status:
                if st.name.startswith("mc_"):
                    self.status[st.name] = {kv.key: kv.value for kv in st.values}

    def _cb(self, topic: str):
        def cb(msg) -> None:
            now = time.time()  # the stamps are ROS system time on this machine
            with self.lock:
                self.recv[topic].append((now, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))
        return cb

    def window(self, t0: float, t1: float) -> dict[str, list[float]]:
        """Per topic: latencies (ms) of the outputs received in [t0, t1) (wall clock)."""
        with self.lock:
            return {t: [(r - s) * 1e3 for r, s in v if t0 <= r < t1] for t, v in self.recv.items()}


def _gpu_mb(pids: list[int]) -> Optional[float]:
    """GPU memory (MB) used by `pids` (nvidia-smi), None without a GPU / nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = [float(m) for p, m in (line.split(",") for line in out.strip().splitlines() if "," in line)
            if int(p) in pids]
    return sum(used) if used else 0.0


def _memory(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) MB summed over the processes (PSS from /proc/<pid>/smaps_rollup)."""
    rss = pss = 0.0
    for pid in pids:
        p = psutil.Process(pid)
        rss += p.memory_info().rss / 1e6
        pss += getattr(p.memory_full_info(), "pss", 0) / 1e6
    return rss, pss


def _node_args(name: str, cameras: list[str], args: argparse.Namespace) -> list[str]:
    """A node process named `name` serving `cameras` ([''] = the default single unnamed camera)."""
    cams = ["-p", "cameras:=[" + ", ".join(cameras) + "]"] if cameras != [""] else []
    return ["-m", "omg_seg_ros.node", "--ros-args", "--params-file", str(ROOT / "config" / "perception.yaml"),
            "-r", f"__node:={name}", *cams, "-p", f"backend:={args.backend}", "-p", f"device:={args.device}",
            "-p", f"cpu_threads:={args.cpu_threads}", "-p", "diagnostics_period:=1.0"]


def run_setup(kind: str, n: int, size: tuple[int, int], args: argparse.Namespace, log_dir: Path) -> dict:
    """kind 'one': one node with n cameras; 'separate': n nodes with one camera each."""
    w, h = size
    if kind == "one":
        names = [f"cam{i}" for i in range(n)]
        specs = [("mc_one", names)]
        in_topics = [f"/mc_one/{c}/input/image" for c in names]
        out_topics = [f"/mc_one/{c}/output/segments" for c in names]
    else:
        specs = [(f"mc_sep{i}", [""]) for i in range(n)]
        in_topics = [f"/mc_sep{i}/input/image" for i in range(n)]
        out_topics = [f"/mc_sep{i}/output/segments" for i in range(n)]
    nodes, logs = [], []
    for name, cams in specs:
        logs.append(log_dir / f"{name}_{n}cams_{w}x{h}.log")
        nodes.append(_spawn(_node_args(name, cams, args), log=logs[-1]))
    listener = pub = None
    try:
        start_s = wait_active(nodes, logs, 900)
        listener = Listener(out_topics)
        pub = _spawn([str(Path(__file__).resolve()), "--publish", ",".join(in_topics), "--size", f"{w}x{h}",
                      "--rate", str(args.rate)], pipe=True)
        if not pub.stdout.readline().startswith("ready"):
            raise RuntimeError("publisher failed to start")
        end = time.monotonic() + 300  # first outputs of every camera: subscriptions matched, lazy init done
        while not all(listener.recv[t] for t in out_topics):
            if time.monotonic() > end:
                raise RuntimeError(f"no outputs on {[t for t in out_topics if not listener.recv[t]]}")
            time.sleep(0.2)
        time.sleep(args.warmup)
        pids = [p.pid for p in nodes]
        cpu0 = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)
        t0, samples, gpu = time.time(), [], []
        while time.time() < t0 + args.seconds:
            samples.append(_memory(pids))
            g = _gpu_mb(pids)
            if g is not None:
                gpu.append(g)
            time.sleep(1.0)
        t1 = time.time()
        cpu1 = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)
        lat = listener.window(t0, t1)
        with listener.lock:
            status = {name: {k: v for k, v in vals.items() if k.startswith("stage_") or k in (
                "model_p50_ms", "queue_wait_p50_ms", "batch_size_mean", "frames_dropped", "frames_processed",
                "backend")} for name, vals in listener.status.items()}
        pooled = [v for vs in lat.values() for v in vs]
        per_cam = {t: {"frames_per_s": len(v) / (t1 - t0), "latency_p50_ms": percentile(v, 50),
                       "latency_p95_ms": percentile(v, 95)} for t, v in lat.items()}
        return {"setup": kind, "cameras": n, "size": f"{w}x{h}", "node_processes": len(nodes),
                "cpu_threads": args.cpu_threads, "start_s": round(start_s, 1),
                "rss_mb": max(s[0] for s in samples), "pss_mb": max(s[1] for s in samples),
                "gpu_mb": max(gpu) if gpu else None,
                "total_frames_per_s": len(pooled) / (t1 - t0),
                "latency_p50_ms": percentile(pooled, 50), "latency_p95_ms": percentile(pooled, 95),
                "node_cpu_percent": 100.0 * (cpu1 - cpu0) / (t1 - t0), "per_camera": per_cam,
                "node_diagnostics": status}
    finally:
        if pub is not None:
            _stop(pub)
        if listener is not None:
            listener.close()
        for node in nodes:
            _stop(node)


def print_table(rows: list[dict]) -> None:
    print(f"\n{'size':>8} {'cams':>4} {'set-up':>12} {'procs':>5} {'RSS MB':>7} {'PSS MB':>7} {'GPU MB':>7} "
          f"{'frames/s':>8} {'lat p50':>8} {'lat p95':>8} {'CPU %':>6}")
    for r in rows:
        print(f"{r['size']:>8} {r['cameras']:>4} {r['setup']:>12} {r['node_processes']:>5} {r['rss_mb']:>7.0f} "
              f"{r['pss_mb']:>7.0f} {cell(r['gpu_mb'], '.0f'):>7} {r['total_frames_per_s']:>8.2f} "
              f"{cell(r['latency_p50_ms'], '.0f'):>8} {cell(r['latency_p95_ms'], '.0f'):>8} "
              f"{r['node_cpu_percent']:>6.0f}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--sizes", nargs="+", default=["320x240"])
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second of EACH camera")
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window per set-up")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds after every camera's first output")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cpu-threads", type=int, default=0, help="node parameter cpu_threads of every node (0 = the "
                                                                 "libraries' default: all cores)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "multi_camera.json")
    ap.add_argument("--publish", default="", help=argparse.SUPPRESS)  # publisher process mode (internal)
    ap.add_argument("--size", default="320x240", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.publish:
        w, h = (int(v) for v in args.size.split("x"))
        return publish(args.publish.split(","), (w, h), args.rate)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    log_dir = ROOT / "bench_results" / "multi_camera"
    log_dir.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    rows = []
    for s in args.sizes:
        size = tuple(int(v) for v in s.split("x"))
        for n in args.cameras:
            for kind in (("one",) if n == 1 else ("one", "separate")):
                print(f"[bench] {s}, {n} camera(s), {'one node' if kind == 'one' else f'{n} nodes'} ...", flush=True)
                rows.append(run_setup(kind, n, size, args, log_dir))
                print_table(rows[-1:])
    print_table(rows)
    out = {"command": " ".join(["benchmarks/multi_camera.py", *(argv if argv is not None else sys.argv[1:])]),
           "rows": rows, "machine": {"cpus": os.cpu_count(), "load_avg_before": load0, "load_avg_after": os.getloadavg(),
                                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")},
           "date": time.strftime("%Y-%m-%d %H:%M")}
    print()
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
