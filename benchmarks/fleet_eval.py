"""`omg-seg-eval-fleet` throughput: the same generated bags evaluated by 1 and 2 Ray workers (and the one-process
reference without Ray) on this machine; prints a table and writes JSON.

    scripts/with_env.sh .venv/bin/python benchmarks/fleet_eval.py [--bags 8] [--frames 12] [--size 160x120]
                                                                  [--workers 1 2] [--json F]

Every row runs the full command in this process: a local Ray start (--num-cpus 2), one model build per worker,
the bags, per-bag and merged reports. wall_s is that whole command; frames/s = frames evaluated / wall_s;
eval_frames_per_s divides by the summed per-bag seconds instead (model + metrics, per worker). The merged
results of every row are checked to be identical (latencies aside). Each worker uses one torch thread.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omg_seg_ros.cli import fleet_eval, make_bag  # noqa: E402

EVAL = ["--model", "tiny", "--vocabulary", "robot_workspace", "--video"]


def _results(out: Path) -> dict:
    res = json.loads((out / "report.json").read_text())["results"]
    return {k: v for k, v in res.items() if k != "latency_ms"}


def run_row(bags: Path, out: Path, workers: int) -> dict:
    """One fleet command (workers 0 = --single-process); its timings from the wall clock and fleet.json."""
    mode = ["--single-process"] if workers == 0 else ["--workers", str(workers), "--num-cpus", "2"]
    t0 = time.perf_counter()
    rc = fleet_eval.main([str(bags), "--out", str(out), *mode, "--", *EVAL])
    wall = time.perf_counter() - t0
    fleet = json.loads((out / "fleet.json").read_text())
    frames = sum(b.get("frames", 0) for b in fleet["bags"].values())
    busy = sum(b.get("seconds", 0.0) for b in fleet["bags"].values())
    return {"workers": workers, "rc": rc, "frames": frames, "bags": len(fleet["bags"]), "wall_s": round(wall, 2),
            "frames_per_s": round(frames / wall, 3), "worker_busy_s": round(busy, 2),
            "eval_frames_per_s": round(frames / busy, 3) if busy else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", type=int, default=8)
    ap.add_argument("--frames", type=int, default=12, help="frames per bag")
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="0 = the one-process reference")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fleet_eval_tiny_cpu.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet_bench_") as tmp:
        bags = Path(tmp) / "bags"
        for i in range(a.bags):
            make_bag.main(["--out", str(bags / f"bag{i:02d}"), "--frames", str(a.frames), "--seed", str(i),
                           "--size", a.size, "--video", "--prompts"])
        rows, results = [], []
        for w in a.workers:
            load = os.getloadavg()[0]
            rows.append({**run_row(bags, Path(tmp) / f"out_w{w}", w), "load_avg_1min_before": round(load, 2)})
            results.append(_results(Path(tmp) / f"out_w{w}"))
    identical = all(r == results[0] for r in results)
    print(f"\n{a.bags} bags x {a.frames} frames ({a.size}, --video --prompts), omg_seg_tiny on CPU, "
          f"{os.cpu_count()} cores shared")
    print(f"{'workers':>8} {'frames':>7} {'wall s':>8} {'frames/s':>9} {'eval frames/s':>14} {'load':>6}")
    for r in rows:
        name = "single" if r["workers"] == 0 else str(r["workers"])
        print(f"{name:>8} {r['frames']:>7} {r['wall_s']:>8.1f} {r['frames_per_s']:>9.2f} "
              f"{r['eval_frames_per_s'] or 0:>14.2f} {r['load_avg_1min_before']:>6.2f}")
    print(f"merged results identical across rows: {identical}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"bags": a.bags, "frames_per_bag": a.frames, "size": a.size, "eval_options": EVAL,
                                  "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                              "platform": platform.platform()},
                                  "rows": rows, "merged_results_identical": identical}, indent=1))
    print(f"wrote {a.json}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
