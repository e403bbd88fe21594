"""Where the image graph's time goes: the ONNX Runtime profiler and the PyTorch profiler on the same preprocessed
scene, per module and per operator, in one run.

    scripts/with_env.sh .venv/bin/python benchmarks/profile_graph.py [--backends onnxruntime torch] [--runs 40]
        [--threads 2] [--size 320x240] [--checkpoint models/omg_seg_tiny.pth] [--json F]

Modules: rows are module call paths cut at --depth calls (default 2: `backbone/body`, `pixel_decoder/encoder`,
`head/layers.0`, ...), named as the ONNX exporter names node scopes (one level per module CALLED, so containers
that are only indexed do not appear: the decoder's layers are `head/layers.0`). An operator a module runs itself,
outside its children at that depth, counts for the module (`head`). Nodes ONNX Runtime fused or inserted
(SkipLayerNormalization, layout reorders) have no scope and are listed as `(no scope: ...)`, with the few ops
the model's own forward runs outside any child module. ONNX Runtime rows are kernel times; PyTorch rows are the
modules' self CPU time (the profiler's own overhead included, so compare shares, not milliseconds, with the other
benchmarks). The untimed `--warmup` runs come first; all runs use the same image (a generated held-out scene).

Profile before changing anything (issue #23): the tables name what a lighter model or a faster kernel would have
to remove. Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_util import write_json  # noqa: E402
from omg_seg_core.predict import build_predictor  # noqa: E402
from omg_seg_core.predict.preprocess import preprocess  # noqa: E402
from omg_seg_core.runtime.allocator import tune_allocator  # noqa: E402
from omg_seg_core.train.synth_eval import heldout_frames  # noqa: E402

UNSCOPED = "(no scope: fused / inserted by onnxruntime)"


def label(qualified_name: str) -> str:
    """How the ONNX exporter names a module in a node's scope: the last part of its qualified name, an index
    joined to its container's name ("head.transformer_decoder.layers.0" -> "layers.0")."""
    parts = qualified_name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 and parts[-1].isdigit() else parts[-1]


def node_module(node: str, depth: int) -> str:
    """The module an ONNX Runtime node belongs to, at most `depth` scopes deep: "/head/layers.0/ffn/Add" ->
    "head/layers.0" (depth 2), "/head/MatMul_3" -> "head"; a node without a scope (fused or inserted by
    onnxruntime, or an op of the root module itself) -> UNSCOPED. The exporter names nodes
    "/<called module>/.../<op>", one scope per module called."""
    scopes = node.strip("/").split("/")[:-1] if node.startswith("/") else []
    return "/".join(scopes[:depth]) or UNSCOPED


def ort_tables(events: Iterable[dict[str, Any]], depth: int, runs: int
               ) -> tuple[dict[str, float], dict[str, float], float]:
    """ONNX Runtime profile events (the JSON list of `end_profiling()`) -> (ms per run by module, ms per run by
    operator type, total kernel ms per run). Only node kernel events count (`cat` "Node", name "*_kernel_time")."""
    by_module: Counter[str] = Counter()
    by_op: Counter[str] = Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        us = float(e.get("dur", 0))
        by_module[node_module(node, depth)] += us
        by_op[e.get("args", {}).get("op_name", "?")] += us
    scale = 1e-3 / max(1, runs)
    total = sum(by_module.values()) * scale
    return ({k: v * scale for k, v in by_module.most_common()}, {k: v * scale for k, v in by_op.most_common()},
            total)


def profile_onnxruntime(pred: Any, x: torch.Tensor, runs: int, warmup: int, threads: int, depth: int) -> dict[str, Any]:
    """The predictor's image graph in a session of the same options with onnxruntime's profiler on."""
    import onnxruntime as ort  # noqa: PLC0415

    from omg_seg_core.runtime.onnx_io import IMAGE_INPUT  # noqa: PLC0415
    from omg_seg_core.runtime.ort_backend import _session_options, ensure_bundle  # noqa: PLC0415

    bundle = ensure_bundle(pred.model, (int(x.shape[-2]), int(x.shape[-1])))  # the predictor's cached export
    feeds = {IMAGE_INPUT: bundle.pad_image(x).numpy()}
    opts = _session_options(ort, threads, False)
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(bundle.path("image")), opts, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            sess.run(None, feeds)
        wall = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, feeds)
            wall.append((time.perf_counter() - t) * 1e3)
        events = json.loads(Path(sess.end_profiling()).read_text())
    # the warm-up runs are profiled too: keep the node events after the last of them
    session_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                          key=lambda e: e["ts"])
    counted = runs
    if warmup and len(session_runs) == warmup + runs:
        cut = session_runs[warmup - 1]["ts"] + session_runs[warmup - 1]["dur"]
        events = [e for e in events if e.get("ts", 0) >= cut]
    elif warmup:  # runs not told apart: average over every profiled run
        counted = max(len(session_runs), warmup + runs)
    by_module, by_op, total = ort_tables(events, depth, counted)
    return {"wall_median_ms": float(np.median(wall)), "kernel_ms": total, "modules": by_module, "ops": by_op}


def profile_torch(pred: Any, x: torch.Tensor, runs: int, warmup: int, threads: int, depth: int) -> dict[str, Any]:
    """The predictor's eager image graph under torch.profiler. Every module call at most `depth` calls deep runs in
    a record_function named by its call path, in the exporter's naming (`label`), so rows match ONNX Runtime's;
    a row's time is the path's inclusive time minus that of the paths one call deeper."""
    from torch.profiler import ProfilerActivity, profile, record_function  # noqa: PLC0415

    torch.set_num_threads(threads)
    stack: list[tuple[str, Any]] = []  # (label, record_function or None) of the modules being called
    handles = []
    for name, mod in pred.model.named_modules():
        if not name:
            continue

        def pre(_m: Any, _a: Any, lab: str = label(name)) -> None:
            path = "/".join([s for s, _ in stack] + [lab])
            rf = record_function(f"module::{path}") if len(stack) < depth else None
            if rf is not None:
                rf.__enter__()
            stack.append((lab, rf))

        def post(_m: Any, _a: Any, _o: Any) -> None:
            rf = stack.pop()[1]
            if rf is not None:
                rf.__exit__(None, None, None)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                pred.backend.run_image(x)
            wall = []
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(runs):
                    t = time.perf_counter()
                    pred.backend.run_image(x)
                    wall.append((time.perf_counter() - t) * 1e3)
    finally:
        for h in handles:
            h.remove()
    incl: dict[str, float] = {}
    ops: Counter[str] = Counter()
    for ev in prof.key_averages():
        if ev.key.startswith("module::"):
            incl[ev.key[len("module::"):]] = ev.cpu_time_total * 1e-3 / runs
        else:
            ops[ev.key] += ev.self_cpu_time_total * 1e-3 / runs
    own = {}
    for m, t in incl.items():  # minus the profiled modules directly below it
        own[m] = t - sum(v for c, v in incl.items() if c.startswith(m + "/") and c.count("/") == m.count("/") + 1)
    return {"wall_median_ms": float(np.median(wall)), "modules": dict(sorted(own.items(), key=lambda kv: -kv[1])),
            "ops": dict(ops.most_common())}


def _print(name: str, res: dict[str, Any], top: int) -> None:
    total = sum(res["modules"].values())
    print(f"\n{name}: median {res['wall_median_ms']:.2f} ms a run under the profiler"
          + (f", kernels {res['kernel_ms']:.2f} ms" if "kernel_ms" in res else ""))
    print(f"{'module':<44} {'ms/run':>8} {'share':>6}")
    for k, v in list(res["modules"].items())[:top]:
        print(f"{k:<44} {v:>8.2f} {v / max(total, 1e-9):>6.1%}")
    print(f"{'operator':<44} {'ms/run':>8}")
    for k, v in list(res["ops"].items())[:top]:
        print(f"{k:<44} {v:>8.2f}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"], choices=["onnxruntime", "torch"])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the scene")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped omg-seg-tiny")
    ap.add_argument("--depth", type=int, default=2, help="module depth rows are grouped at")
    ap.add_argument("--top", type=int, default=15, help="rows printed per table (the JSON has all)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench_results" / "profile_graph.json")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.depth < 1:
        ap.error("--runs and --depth must be >= 1")
    tune_allocator()  # as the node does
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    rgb = heldout_frames(1, seed=7, size=(w, h))[0].rgb
    out: dict[str, Any] = {"command": " ".join(sys.argv), "size": args.size, "threads": args.threads,
                           "runs": args.runs, "depth": args.depth,
                           "machine": {"cpus": os.cpu_count(), "processor": platform.processor(),
                                       "load_avg_1m": os.getloadavg()[0]},
                           "backends": {}}
    for backend in args.backends:
        kw = {"threads": args.threads} if backend == "onnxruntime" else {}
        pred = build_predictor("omg_seg_tiny", checkpoint=args.checkpoint, backend=backend, **kw)
        x = preprocess(rgb, pred.long_side, pred.cfg.pad_size_divisor)[0]
        fn = profile_onnxruntime if backend == "onnxruntime" else profile_torch
        res = fn(pred, x, args.runs, args.warmup, args.threads, args.depth)
        out["backends"][backend] = res
        _print(backend, res, args.top)
    print()
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
