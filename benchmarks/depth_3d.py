"""Cost of the per-segment 3D answer (spatial/boxes3d.py): 20 segments of a 640x480 frame, clean and noisy depth.

    scripts/with_env.sh .venv/bin/python benchmarks/depth_3d.py [--repeats 50] [--json benchmarks/results/depth_3d.json]

Segments are the ground-truth masks of generated scenes (the cost depends on mask pixels, not on where masks come
from), padded or cut to exactly 20 per frame. Prints a table (median and p90 ms per frame) and writes JSON. The
issue's aim: <= 3 ms for 20 segments at 640x480 on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/depth_3d.json"))
    a = ap.parse_args(argv)
    from omg_seg_core.data.synth import SynthGenerator
    from omg_seg_core.spatial import DepthConfig, segment_boxes_3d
    from omg_seg_core.structures import Segments

    gen = SynthGenerator(640, 480, split="heldout", seed=7)
    try:
        frames = [gen.frame(i) for i in range(a.frames)]
    finally:
        gen.close()
    rows = []
    for name, cfg in (("camera-aligned box (default)", DepthConfig()), ("oriented box (PCA)", DepthConfig(oriented=True))):
        for noisy in (False, True):
            times = []
            for f in frames:
                seg = f.to_segments()
                seg = Segments.cat([seg] * (20 // len(seg) + 1))[np.arange(20)]
                depth = f.sensor_depth() if noisy else f.depth
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    segment_boxes_3d(seg, depth, f.camera, cfg)
                    times.append((time.perf_counter() - t0) * 1e3)
            rows.append({"variant": name, "depth": "noisy" if noisy else "clean", "segments": 20, "size": "640x480",
                         "median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))})
    print(f"{'variant':32s} {'depth':6s} {'median ms':>10s} {'p90 ms':>8s}")
    for r in rows:
        print(f"{r['variant']:32s} {r['depth']:6s} {r['median_ms']:10.2f} {r['p90_ms']:8.2f}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
