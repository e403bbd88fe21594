"""Everything GPU-side in one run (under 8 minutes on one GPU), one JSON out: run it the first time a GPU is lent.

    scripts/with_env.sh .venv/bin/python benchmarks/gpu.py --out benchmarks/results/gpu.json
    scripts/with_env.sh .venv/bin/python benchmarks/gpu.py --cpu-dry-run --out /tmp/gpu.json   # plumbing, on CPU

Sections (each one timed with CUDA events after warm-up, medians; parity against the fp32 eager run of the same
model on the same input):
1. omg-seg-tiny (shipped weights) at 320x240 and 640x480: fp32 / fp16 / bf16 eager: image-graph latency,
   set_image + panoptic() latency, max |diff| of class and mask logits vs fp32, panoptic map pixels that differ;
2. torch.compile (default and "reduce-overhead" = CUDA graphs) of the image graph: latency, parity;
3. ONNX Runtime with the CUDA provider (when onnxruntime-gpu is installed): latency, parity;
4. ConvNeXt-L OMG-Seg (random weights: latency only; the real weights are the user's) at 1024 long side,
   fp32 / fp16: image graph and set_image + panoptic(); the goal is fp16 under 40 ms end to end.
With --cpu-dry-run every section runs on the CPU with 2 repeats and the tiny model only (what CI tests).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omg_seg_core.predict import build_predictor  # noqa: E402
from omg_seg_core.predict.preprocess import preprocess  # noqa: E402


def timer(device: torch.device, fn: Callable[[], Any], warmup: int, repeats: int) -> dict[str, float]:
    """Median / p90 ms of fn() (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}


def scene(w: int, h: int) -> np.ndarray:
    import cv2

    from omg_seg_core.train.synth_eval import heldout_frames

    return cv2.resize(heldout_frames(1, seed=7)[0].rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def parity(ref, got) -> dict[str, float]:
    """Max |diff| of the image graph outputs that decide the results, and the cosine similarity of all class
    embeddings (class_embed_cos: one number that a single query flipping its masked attention cannot swing the
    way it swings a max)."""
    out = {k: float((getattr(got, k).float() - getattr(ref, k).float()).abs().max())
           for k in ("class_embed", "mask_logits", "iou_logits")}
    out["class_embed_cos"] = float(torch.nn.functional.cosine_similarity(
        got.class_embed.float().flatten(), ref.class_embed.float().flatten(), dim=0))
    return out


def section_tiny(device: torch.device, sizes: list[tuple[int, int]], warmup: int, repeats: int) -> dict:
    out: dict[str, Any] = {}
    for w, h in sizes:
        img = scene(w, h)
        ref_pred = build_predictor("omg_seg_tiny", device=str(device))
        ref_pred.set_image(img)
        ref_feats, ref_pan = ref_pred.features, ref_pred.panoptic()
        ref_map = ref_pan.panoptic_id_map(len(ref_pred.class_names))
        row: dict[str, Any] = {}
        for dtype in ("float32", "float16", "bfloat16"):
            try:
                p = build_predictor("omg_seg_tiny", device=str(device), dtype=dtype)
                x, _ = preprocess(img, p.long_side, p.cfg.pad_size_divisor, device)
                with torch.inference_mode():
                    graph = timer(device, lambda: p.backend.run_image(x), warmup, repeats)
                    frame = timer(device, lambda: (p.set_image(img), p.panoptic()), warmup, repeats)
                    p.set_image(img)
                    pan = p.panoptic()
                row[dtype] = {"image_graph": graph, "set_image_panoptic": frame, "parity": parity(ref_feats, p.features),
                              "panoptic_px_differing": int((pan.panoptic_id_map(len(p.class_names)) != ref_map).sum())}
            except Exception as e:  # noqa: BLE001 - a dtype the device lacks is a result, not a crash
                row[dtype] = {"error": f"{type(e).__name__}: {e}"}
        out[f"{w}x{h}"] = row
    return out


def section_compile(device: torch.device, warmup: int, repeats: int) -> dict:
    out: dict[str, Any] = {}
    img = scene(320, 240)
    p = build_predictor("omg_seg_tiny", device=str(device))
    x, _ = preprocess(img, p.long_side, p.cfg.pad_size_divisor, device)
    with torch.inference_mode():
        ref = p.model.forward_image(x)
    for mode in ("default", "reduce-overhead"):
        try:
            fn = torch.compile(p.model.forward_image, mode=mode)
            with torch.inference_mode():
                t = timer(device, lambda: fn(x), warmup + 3, repeats)
                got = fn(x)
            out[mode] = {"image_graph": t, "parity": parity(ref, got)}
        except Exception as e:  # noqa: BLE001
            out[mode] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    return out


def section_ort(device: torch.device, warmup: int, repeats: int) -> dict:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return {"skipped": f"onnxruntime not installed ({e})"}
    providers = ort.get_available_providers()
    want = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if want not in providers:
        return {"skipped": f"{want} not available (providers {providers}; pip install onnxruntime-gpu)"}
    img = scene(320, 240)
    ref = build_predictor("omg_seg_tiny", device=str(device))
    ref.set_image(img)
    p = build_predictor("omg_seg_tiny", backend="onnxruntime", device=str(device), fallback=False)
    x, _ = preprocess(img, p.long_side, p.cfg.pad_size_divisor, device)
    t = timer(device, lambda: p.backend.run_image(x), warmup, repeats)
    p.set_image(img)
    return {"provider": want, "image_graph": t, "parity": parity(ref.features, p.features)}


def section_convl(device: torch.device, warmup: int, repeats: int) -> dict:
    from omg_seg_core.config import CONVL
    from omg_seg_core.model.omg_seg import build_model
    from omg_seg_core.predict import OMGSegPredictor
    from omg_seg_core.runtime.torch_backend import TorchBackend
    from omg_seg_core.text.clip_text import ClipTextEncoder

    out: dict[str, Any] = {"weights": "random (latency only)"}
    img = scene(1024, 768)
    torch.manual_seed(0)
    model = build_model(CONVL, pretrained_backbone=False).to(device).eval()
    enc = ClipTextEncoder(text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=1),
                          embed_dim=CONVL.class_embed_dim)
    for dtype in ("float32", "float16"):
        try:
            p = OMGSegPredictor(model, backend=TorchBackend(model, device=str(device), dtype=dtype), text_encoder=enc,
                                vocabulary="coco_panoptic", long_side=1024)
            x, _ = preprocess(img, 1024, CONVL.pad_size_divisor, device)
            with torch.inference_mode():
                out[dtype] = {"image_graph": timer(device, lambda: p.backend.run_image(x), warmup, repeats),
                              "set_image_panoptic": timer(device, lambda: (p.set_image(img), p.panoptic()), warmup,
                                                          repeats)}
        except Exception as e:  # noqa: BLE001
            out[dtype] = {"error": f"{type(e).__name__}: {e}"}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    ap.add_argument("--cpu-dry-run", action="store_true", help="run every section on the CPU, briefly (CI)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--sections", nargs="+", default=["tiny", "compile", "onnxruntime", "convl_1024"],
                    choices=["tiny", "compile", "onnxruntime", "convl_1024"])
    args = ap.parse_args(argv)
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure (use --cpu-dry-run to check the script)")
        return {"skipped": "no CUDA GPU"}
    device = torch.device("cpu" if dry else "cuda")
    warmup, repeats = (1, 2) if dry else (5, args.repeats)
    result: dict[str, Any] = {"device": "cpu (dry run)" if dry else torch.cuda.get_device_name(0),
                              "torch": torch.__version__, "host": platform.node(), "sections": {}}
    t_all = time.monotonic()
    sections = [("tiny", lambda: section_tiny(device, [(320, 240)] if dry else [(320, 240), (640, 480)], warmup,
                                              repeats)),
                ("compile", lambda: section_compile(device, warmup, repeats)),
                ("onnxruntime", lambda: section_ort(device, warmup, repeats))]
    if not dry:
        sections.append(("convl_1024", lambda: section_convl(device, warmup, repeats)))
    for name, fn in [(n, f) for n, f in sections if n in args.sections]:
        t0 = time.monotonic()
        try:
            result["sections"][name] = fn()
        except Exception as e:  # noqa: BLE001 - one failing section must not lose the others
            result["sections"][name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        result["sections"][name]["seconds"] = round(time.monotonic() - t0, 1)
        print(f"[gpu] {name}: {result['sections'][name]['seconds']} s", flush=True)
    result["seconds"] = round(time.monotonic() - t_all, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1)[:4000])
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
