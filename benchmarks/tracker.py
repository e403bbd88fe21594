"""Per-frame cost of `Tracker.update` (and `TargetManager.update` without a predictor) on CPU.

Each case runs a steady-state sequence: N objects (ellipses, 8 classes, 128-d query embeddings as in omg_seg_tiny)
moving a few pixels per frame, with 10 % of them missing in any frame and a few false positives, so association,
life cycle and id assignment all run. Timing covers `update()` only (each frame is built before its timer starts).

    OMP_NUM_THREADS=1 scripts/with_env.sh .venv/bin/python benchmarks/tracker.py [--frames 200] [--json out.json]

Prints a table (median / p95 ms per frame) and writes JSON. Numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout without install

from omg_seg_core.structures import Segments
from omg_seg_core.tracking import TargetManager, Tracker, TrackerConfig


def make_frames(n: int, size: tuple[int, int], frames: int, dim: int = 128, seed: int = 0) -> Iterator[Segments]:
    """Synthetic segments: n moving ellipses (+ noise on embeddings), 10 % dropped, ~n/20 false positives.
    A generator: 100 masks at 640x480 are 30 MB per frame, too much to keep a whole sequence in memory."""
    rng = np.random.default_rng(seed)
    h, w = size
    centre = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h], size=(n, 2))
    vel = rng.normal(0, 0.004 * w, size=(n, 2))
    radius = rng.uniform(0.02, 0.06, size=(n, 2)) * min(h, w)
    cls = rng.integers(0, 8, n)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    for _ in range(frames):
        centre = np.clip(centre + vel, 0, [w - 1, h - 1])
        idx = np.flatnonzero(rng.random(n) > 0.1)
        n_fp = rng.poisson(max(n / 20, 0.5))
        c = np.concatenate([centre[idx], rng.uniform([0, 0], [w, h], size=(n_fp, 2))])
        r = np.concatenate([radius[idx], rng.uniform(0.02, 0.05, size=(n_fp, 2)) * min(h, w)])
        k = len(c)
        masks = np.zeros((k, h, w), bool)
        for i in range(k):  # draw each ellipse inside its own box only (cheap even for 100 x 640x480)
            x0, y0 = (np.floor(c[i] - r[i]).clip(0)).astype(int)
            x1, y1 = (np.ceil(c[i] + r[i]) + 1).astype(int).clip(0, [w, h])
            yy, xx = np.mgrid[y0:y1, x0:x1]
            masks[i, y0:y1, x0:x1] = ((xx - c[i, 0]) / r[i, 0]) ** 2 + ((yy - c[i, 1]) / r[i, 1]) ** 2 <= 1
        e = np.concatenate([emb[idx], rng.normal(size=(n_fp, dim)).astype(np.float32)])
        e = e + rng.normal(0, 0.3, e.shape).astype(np.float32)
        cl = np.concatenate([cls[idx], rng.integers(0, 8, n_fp)])
        yield Segments(masks, np.full(k, 0.9), cl, [f"c{x}" for x in cl], np.ones(k, bool), embeddings=e,
                       task="panoptic")


def bench(n: int, size: tuple[int, int], frames: int, warmup: int = 10) -> dict:
    seqs = make_frames(n, size, frames + warmup)  # each frame is built before its timing starts
    tracker, targets = Tracker(TrackerConfig()), TargetManager(TrackerConfig())
    t_track, t_target = [], []
    for i, seg in enumerate(seqs):
        t0 = time.perf_counter()
        out = tracker.update(seg)
        t1 = time.perf_counter()
        if i == warmup // 2:  # register 3 targets once tracks exist, then time their per-frame update too
            for row in range(min(3, len(out))):
                targets.register(out.select([row]), frame_segments=out)
        t2 = time.perf_counter()
        targets.update(out)
        t3 = time.perf_counter()
        if i >= warmup:
            t_track.append((t1 - t0) * 1e3)
            t_target.append((t3 - t2) * 1e3)
    return {"segments": n, "height": size[0], "width": size[1], "frames": frames,
            "tracker_median_ms": float(np.median(t_track)), "tracker_p95_ms": float(np.percentile(t_track, 95)),
            "targets3_median_ms": float(np.median(t_target)),
            "targets3_p95_ms": float(np.percentile(t_target, 95)),
            "confirmed_tracks_end": len(tracker.confirmed_ids)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--segments", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/tracker.json"))
    args = ap.parse_args()
    rows = [bench(n, size, args.frames) for size in ((240, 320), (480, 640)) for n in args.segments]
    print(f"{'size':>9} {'segments':>8} {'tracker median ms':>18} {'p95 ms':>7} {'3 targets median ms':>20} "
          f"{'p95 ms':>7}")
    for r in rows:
        print(f"{r['width']:>4}x{r['height']:<4} {r['segments']:>8} {r['tracker_median_ms']:>18.3f} "
              f"{r['tracker_p95_ms']:>7.3f} {r['targets3_median_ms']:>20.3f} {r['targets3_p95_ms']:>7.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "note": "Tracker.update only; frames prebuilt; CPU"}
    args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
