"""Frames per second of the synthetic generator (issue #3 bar: >= 20 frames/s at 320x240 on one core).

    OMP_NUM_THREADS=1 LP_NUM_THREADS=0 taskset -c 0 .venv/bin/python benchmarks/synth_speed.py --frames 200

Stages timed per frame: scene sampling, rendering (shadow + colour + label passes and read-back), ground truth
(ids, semantic map, boxes, phrases, blur), and optionally writing (JPEG + panoptic PNG + record JSON). Single frames
and video frames are measured separately. Both wall time and process CPU time are reported: on a shared machine
the CPU time is the honest per-core cost. Prints a table and writes JSON (default benchmarks/results/synth_speed.json).
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omg_seg_core.data.synth.generate import _save, parse_size  # noqa: E402
from omg_seg_core.data.synth.generator import SynthGenerator, _blur, frame_from_render  # noqa: E402
from omg_seg_core.data.synth.scene import sample_scene  # noqa: E402


def _stats(ms: list[float], cpu_ms: list[float]) -> dict:
    a, c = np.asarray(ms), np.asarray(cpu_ms)
    return {"mean_ms": round(float(a.mean()), 2), "p50_ms": round(float(np.median(a)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2), "fps": round(1000.0 / float(a.mean()), 1),
            "cpu_mean_ms": round(float(c.mean()), 2), "cpu_fps": round(1000.0 / float(c.mean()), 1)}


class _Clock:
    """Wall and process CPU time. On a shared machine wall time includes waiting for the core; CPU time (all
    threads of this process, llvmpipe's included) is what one dedicated core would need."""

    def __init__(self) -> None:
        self.w, self.c = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        out = ((w - self.w) * 1000, (c - self.c) * 1000)
        self.w, self.c = w, c
        return out


def run(frames: int, size: tuple[int, int], warmup: int = 10, write: bool = True) -> dict:
    gen = SynthGenerator(size[0], size[1], split="train", seed=12345)
    stages: dict[str, list[tuple[float, float]]] = {"sample": [], "render": [], "ground_truth": [], "total": []}
    for i in range(warmup):  # texture uploads and shader compilation happen on first use
        gen.frame(100000 + i)
    for i in range(frames):
        clk = _Clock()
        rng = gen.rng(0, i)
        scene = sample_scene(rng, gen.params)
        t_sample = clk.lap()
        rgb, labels = gen.renderer.render(scene)
        t_render = clk.lap()
        rgb = _blur(rgb, float(rng.uniform(0.0, 0.8)))
        frame_from_render(scene, rgb, labels, rng, gen.min_area)
        t_gt = clk.lap()
        total = tuple(a + b + c for a, b, c in zip(t_sample, t_render, t_gt))
        for k, v in zip(stages, (t_sample, t_render, t_gt, total)):
            stages[k].append(v)
    result = {k: _stats([w for w, _ in v], [c for _, c in v]) for k, v in stages.items()}
    n_seq = max(frames // 30, 1)
    ms: list[tuple[float, float]] = []
    for k in range(n_seq):
        clk = _Clock()
        for _ in gen.sequence(k, 30):
            ms.append(clk.lap())
    result["video_frame"] = _stats([w for w, _ in ms], [c for _, c in ms])
    if write:
        with tempfile.TemporaryDirectory() as d:
            ms = []
            for i in range(frames):
                clk = _Clock()
                _save(Path(d), gen.frame(i), f"f{i:06d}", i, "jpg")
                ms.append(clk.lap())
            result["frame_and_write"] = _stats([w for w, _ in ms], [c for _, c in ms])
    gen.close()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=parse_size, default=(320, 240))
    ap.add_argument("--no-write", action="store_true", help="skip the frame + write measurement")
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "synth_speed.json")
    a = ap.parse_args()
    res = run(a.frames, a.size, write=not a.no_write)
    meta = {"size": f"{a.size[0]}x{a.size[1]}", "frames": a.frames, "python": platform.python_version(),
            "cpu_affinity": sorted(os.sched_getaffinity(0)), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS"), "load_avg": os.getloadavg()}
    try:
        meta["gl_renderer"] = SynthGenerator(16, 16).renderer.ctx.info["GL_RENDERER"]
    except Exception as e:  # informational only
        meta["gl_renderer"] = f"unknown ({e})"
    print(f"synthetic generator, {meta['size']}, {a.frames} frames, cores {meta['cpu_affinity']}, "
          f"load {meta['load_avg'][0]:.2f}, {meta['gl_renderer']}")
    print(f"{'stage':<18}{'wall mean':>10}{'wall p50':>10}{'wall p90':>10}{'wall fps':>9}{'cpu ms':>9}{'cpu fps':>9}")
    for k, v in res.items():
        print(f"{k:<18}{v['mean_ms']:>10.2f}{v['p50_ms']:>10.2f}{v['p90_ms']:>10.2f}{v['fps']:>9.1f}"
              f"{v['cpu_mean_ms']:>9.2f}{v['cpu_fps']:>9.1f}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": meta, "results": res}, indent=2))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
