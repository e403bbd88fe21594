"""End-to-end `set_image + panoptic()` of the shipped small model per backend, on generated held-out scenes, in one run.

    scripts/with_env.sh .venv/bin/python benchmarks/predictor_loop.py                    # torch + onnxruntime, 2 threads
    scripts/with_env.sh .venv/bin/python benchmarks/predictor_loop.py --backends onnxruntime --threads 1 2
    scripts/with_env.sh .venv/bin/python benchmarks/predictor_loop.py --thresholds split_apart_gap=-1   # official segments

What the node pays per frame for its default task (the issue #3 speed bar), unlike benchmarks/backends.py, which
times the image graph alone: preprocessing, image graph and panoptic post-processing through `OMGSegPredictor`, on
real scenes (post-processing cost depends on how many segments the model keeps, so random weights would not do).
Each backend runs `synth_eval.measure_speed` (the loop of `omg-seg-eval-synth --speed`: --images held-out scenes,
seed --seed, 320x240, 3 warm-up frames, then the median of --reps frames, each set_image + panoptic() followed by
one click prompt() and one text() on the cached features). Prints a table with the ratio to torch eager (and the
prompt / text cost per backend) and writes JSON (--json).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omg_seg_core.cli import parse_overrides  # noqa: E402
from omg_seg_core.predict import build_predictor  # noqa: E402
from omg_seg_core.runtime.allocator import tune_allocator  # noqa: E402
from omg_seg_core.train.synth_eval import heldout_frames, measure_speed  # noqa: E402


def measure(backend: str, threads: int, frames: list, reps: int, spinning: bool = False,
            thresholds: Optional[dict] = None) -> dict[str, float]:
    """`measure_speed` (the loop `omg-seg-eval-synth --speed` runs) for one backend at `threads` threads."""
    torch.set_num_threads(threads)
    kw = {"threads": threads, "spinning": spinning} if backend == "onnxruntime" else {}
    pred = build_predictor("omg_seg_tiny", backend=backend, **kw)
    pred.set_thresholds(**(thresholds or {}))
    return measure_speed(pred, frames, repeats=reps)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"],
                    choices=["torch", "onnxruntime", "onnxruntime-spinning"],
                    help="onnxruntime-spinning: worker threads spin while idle (onnxruntime's and OpenMP's habit; "
                         "the node's default sleeps them)")
    ap.add_argument("--threads", nargs="+", type=int, default=[2])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", default="benchmarks/results/predictor_loop.json")
    ap.add_argument("--thresholds", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TaskThresholds overrides, e.g. split_apart_gap=-1 (the official segments)")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="leave glibc malloc at its defaults (the node tunes it: omg_seg_core/runtime/allocator.py)")
    args = ap.parse_args(argv)
    thresholds = parse_overrides(args.thresholds, "--thresholds")
    malloc = None if args.no_malloc_tuning else tune_allocator()
    frames = heldout_frames(args.images, seed=args.seed)
    rows = [dict(backend=b, threads=t, **measure(b.split("-")[0], t, frames, args.reps, spinning=b.endswith("spinning"),
                                  thresholds=thresholds))
            for t in args.threads for b in args.backends]
    print(f"{'backend':<20} {'threads':>7} {'total ms':>9} {'graph ms':>9} {'post ms':>8} {'vs eager':>9} "
          f"{'prompt ms':>9} {'text ms':>8}")
    for r in rows:
        eager = next((e["set_image_panoptic_ms"] for e in rows
                      if e["backend"] == "torch" and e["threads"] == r["threads"]), None)
        r["speedup_vs_eager"] = eager / r["set_image_panoptic_ms"] if eager else None
        ratio = f"{r['speedup_vs_eager']:.2f}x" if eager else "-"
        print(f"{r['backend']:<20} {r['threads']:>7} {r['set_image_panoptic_ms']:>9.1f} {r['image_graph_ms']:>9.1f} "
              f"{r['postprocess_ms']:>8.1f} {ratio:>9} {r['prompt_ms']:>9.1f} {r['text_ms']:>8.1f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"malloc tuning: {malloc or 'off'}; peak RSS {rss_mb:.0f} MB")
    out = {"rows": rows, "thresholds": thresholds, "images": args.images, "seed": args.seed, "reps": args.reps,
           "malloc_tuning": malloc,
           "peak_rss_mb": rss_mb, "machine": platform.node(), "processor": platform.processor(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d")}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
