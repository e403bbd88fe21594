"""Median latency of each backend on this machine, per model and camera resolution, in one run.

    scripts/with_env.sh .venv/bin/python benchmarks/backends.py                      # tiny at 320x240, CPU
    scripts/with_env.sh .venv/bin/python benchmarks/backends.py --models tiny convl --sizes 320x240 1024x768
    scripts/with_env.sh .venv/bin/python benchmarks/backends.py --models convl --long-side 320 --threads 1 --reps 5

For each (model, camera size WxH) the image is letterboxed to the model's long side, padded to 32 (the static
export size), and every backend runs the image graph (`run_image`, what `set_image` costs) and the prompt graph
with 4 boxes (`run_prompt`). Backends: torch eager (fp32; fp16 too on a GPU), torch.compile (--compile),
onnxruntime CPU (each of --threads; with --spinning also with spinning worker threads) and CUDA (when its
provider exists), TensorRT fp16 (when tensorrt and a GPU exist).
Prints a table with median / p90 ms and the ratio to torch eager, and writes JSON (--json). Weights: the shipped
checkpoint when present, else random (latency does not depend on weight values; the JSON says which).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omg_seg_core.config import default_checkpoint_path, get_model_config  # noqa: E402
from omg_seg_core.runtime.onnx_io import padded_size_for  # noqa: E402


def _load(name: str) -> tuple[torch.nn.Module, str]:
    cfg = get_model_config(name)
    if default_checkpoint_path(cfg.name) is not None:
        from omg_seg_core.model.checkpoint import load_model

        return load_model(cfg.name)[0].float().eval(), "checkpoint"
    from omg_seg_core.model.omg_seg import build_model

    torch.manual_seed(0)
    return build_model(cfg), "random"


def _time(fn: Callable[[], Any], reps: int, warmup: int, sync: bool) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _torch_cpu(model: torch.nn.Module, threads: int, compile: bool = False) -> Any:
    """TorchBackend on the CPU with `threads` intra-op threads (set process-wide until the next factory)."""
    from omg_seg_core.runtime.torch_backend import TorchBackend

    torch.set_num_threads(threads)
    return TorchBackend(model, "cpu", compile=compile)


def _backends(model: torch.nn.Module, bundle: Any,
              args: argparse.Namespace) -> list[tuple[str, Optional[int], Callable[[], Any]]]:
    """(label, CPU threads or None for GPU rows, factory) for what this machine can run; factories build lazily
    (and may fail: reported)."""
    from omg_seg_core.runtime.ort_backend import OrtBackend, available_providers
    from omg_seg_core.runtime.torch_backend import TorchBackend

    torch.set_num_threads(max(args.threads))  # GPU rows: host threads do not matter much
    gpu = torch.cuda.is_available()
    out: list[tuple[str, Optional[int], Callable[[], Any]]] = []
    for t in args.threads:
        out.append((f"torch eager fp32 cpu {t}t", t, lambda t=t: _torch_cpu(model, t)))
        if args.compile:
            out.append((f"torch.compile fp32 cpu {t}t", t, lambda t=t: _torch_cpu(model, t, compile=True)))
        out.append((f"onnxruntime cpu {t}t", t, lambda t=t: OrtBackend(bundle, threads=t)))
        if args.spinning:  # the node's default sleeps idle workers (robust on a busy robot CPU); spinning is
            # onnxruntime's own default and what torch's OpenMP threads do, so on a quiet machine it is the fair pair
            out.append((f"onnxruntime cpu {t}t spinning", t, lambda t=t: OrtBackend(bundle, threads=t, spinning=True)))
    if gpu:
        out.append(("torch eager fp32 cuda", None, lambda: TorchBackend(model, "cuda:0")))
        out.append(("torch eager fp16 cuda", None, lambda: TorchBackend(model, "cuda:0", dtype="float16")))
        if "CUDAExecutionProvider" in available_providers():
            out.append(("onnxruntime cuda", None, lambda: OrtBackend(bundle, device="cuda:0")))
        try:
            import tensorrt  # noqa: F401

            from omg_seg_core.runtime.trt_backend import TrtBackend

            out.append(("tensorrt fp16", None, lambda: TrtBackend(bundle, precision="fp16")))
        except Exception:  # noqa: BLE001
            pass
    return out


def bench_one(name: str, cam_wh: tuple[int, int], args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    from omg_seg_core.runtime.onnx_export import export_onnx

    model, weights = _load(name)
    cfg = model.cfg
    w, h = cam_wh
    long_side = args.long_side or cfg.long_side
    size = padded_size_for(long_side, w / h, cfg.pad_size_divisor)
    print(f"\n== {cfg.name} ({weights} weights), camera {w}x{h} -> static input {size[0]}x{size[1]} (HxW)", flush=True)
    t0 = time.monotonic()
    bundle = export_onnx(model, workdir / f"{cfg.name}-{size[0]}x{size[1]}", size, max_prompts=4, fp16=False,
                         slim=not args.no_slim, progress=lambda s: None)
    print(f"   export: {time.monotonic() - t0:.1f} s", flush=True)
    scale = long_side / max(w, h)
    img_shape = (int(h * scale + 0.5), int(w * scale + 0.5))  # resized image (prompt boxes live here)
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[10.0, 10, 120, 100], [50, 40, 200, 180], [150, 20, 300, 230], [5, 5, 11, 11]])
    rows = []
    for label, threads, factory in _backends(model, bundle, args):
        try:
            b = factory()
            dev = torch.device(getattr(b, "device", "cpu"))
            x = image.to(dev)
            sync = dev.type == "cuda"
            with torch.inference_mode():
                feats = b.run_image(x)
                img_ms = _time(lambda: b.run_image(x), args.reps, args.warmup, sync)
                pr_ms = _time(lambda: b.run_prompt(feats, boxes, img_shape), args.reps, args.warmup, sync)
            b.release()
        except Exception as e:  # noqa: BLE001 (a benchmark reports what could not run and goes on)
            print(f"   {label}: could not run ({type(e).__name__}: {e})", flush=True)
            rows.append({"model": cfg.name, "camera": f"{w}x{h}", "backend": label, "threads": threads,
                         "error": str(e)})
            continue
        row = {"model": cfg.name, "weights": weights, "camera": f"{w}x{h}", "input": f"{size[0]}x{size[1]}",
               "backend": label, "threads": threads, "image_ms_median": statistics.median(img_ms),
               "image_ms_p90": sorted(img_ms)[int(0.9 * (len(img_ms) - 1))],
               "prompt4_ms_median": statistics.median(pr_ms), "reps": args.reps}
        rows.append(row)
        print(f"   {label}: image {row['image_ms_median']:.1f} ms, prompt(4) {row['prompt4_ms_median']:.1f} ms",
              flush=True)
    # ratio to torch eager with the same CPU thread count (GPU rows, threads None: to eager fp32 on the GPU)
    for r in rows:
        if "error" in r:
            continue
        ref = "torch eager fp32 cuda" if r["threads"] is None else f"torch eager fp32 cpu {r['threads']}t"
        base = next((b for b in rows if b["backend"] == ref and "error" not in b), None)
        if base is not None:
            r["speedup_vs_torch_eager"] = base["image_ms_median"] / r["image_ms_median"]
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'model':14} {'camera':>9} {'input':>9} {'backend':26} {'image ms':>9} {'p90':>7} {'prompt4':>8} {'x eager':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['model']:14} {r['camera']:>9} {'':>9} {r['backend']:26} {'n/a':>9}")
            continue
        lines.append(f"{r['model']:14} {r['camera']:>9} {r['input']:>9} {r['backend']:26} "
                     f"{r['image_ms_median']:9.1f} {r['image_ms_p90']:7.1f} {r['prompt4_ms_median']:8.1f} "
                     f"{r.get('speedup_vs_torch_eager', float('nan')):8.2f}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny"])
    p.add_argument("--sizes", nargs="+", default=["320x240"], help="camera sizes WxH")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="CPU thread counts to time torch and onnxruntime with (each gets its own rows)")
    p.add_argument("--long-side", type=int, help="resize long side (default: each model's own, tiny 320, convl 1024)")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow first call)")
    p.add_argument("--spinning", action="store_true",
                   help="also time onnxruntime with spinning worker threads (OrtBackend(spinning=True))")
    p.add_argument("--no-slim", action="store_true")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/backends.json"))
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="leave glibc malloc at its defaults (the node tunes it: omg_seg_core/runtime/allocator.py)")
    args = p.parse_args(argv)
    from omg_seg_core.runtime.allocator import tune_allocator

    malloc = None if args.no_malloc_tuning else tune_allocator()
    print(f"malloc tuning: {malloc or 'off'}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="omg_seg_bench_") as tmp:
        for name in args.models:
            for s in args.sizes:
                w, h = (int(v) for v in s.lower().split("x"))
                rows += bench_one(name, (w, h), args, Path(tmp))
    print("\n" + _table(rows))
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "threads": args.threads, "load_average": os.getloadavg(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "malloc_tuning": malloc, "rows": rows}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(info, indent=1))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
