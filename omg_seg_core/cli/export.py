"""omg-seg-export: export a model's image + prompt graphs to ONNX at one static size; optionally build TensorRT
engines (`--engine`, `--build-only` to pre-build at install time without running anything).

Examples:
    omg-seg-export --model tiny --size 256x320                         # -> cache_dir()/onnx/omg_seg_tiny-.../
    omg-seg-export --model convl --weights omg_seg_convl.pth --backbone-weights open_clip_convnext_l.bin \\
        --long-side 1024 --aspect 4:3 --fp16 --engine --precision fp16 --build-only
Exit status: 0 ok, 2 bad arguments / unusable input (message names it), 3 TensorRT or GPU missing for --engine.
Re-running is safe: an existing valid export or engine is reused, a corrupt one is rebuilt.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

EXIT_BAD_INPUT, EXIT_NO_TRT = 2, 3


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 256x320), got {text!r}") from None
    return h, w


def _aspect(text: str) -> float:
    try:
        a, b = (float(v) for v in text.split(":")) if ":" in text else (float(text), 1.0)
        return a / b
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"aspect must be W:H (e.g. 4:3) or a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omg-seg-export", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny", help="model name/alias (tiny, convl) or a checkpoint path")
    p.add_argument("--weights", help="head weights for a named model (official omg_seg_convl.pth or ours)")
    p.add_argument("--backbone-weights", help="open_clip ConvNeXt-L weights file (convl)")
    p.add_argument("--random-weights", action="store_true",
                   help="randomly initialised model (export / speed tests only: outputs are meaningless)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--size", type=_size, help="static padded input size HxW, multiples of 32")
    g.add_argument("--long-side", type=int, help="resize long side (default: the model's); with --aspect")
    p.add_argument("--aspect", type=_aspect, default=4 / 3, help="camera aspect W:H for --long-side (default 4:3)")
    p.add_argument("--out", type=Path, help="bundle directory (default: cache_dir()/onnx/<model>-<weights>-<size>)")
    p.add_argument("--max-prompts", type=int, default=16, help="prompts per prompt-graph call (padded + masked)")
    p.add_argument("--variant", choices=("image", "head"), default="image",
                   help="'head': backbone feature maps in (parity tests)")
    p.add_argument("--fp16", action="store_true", help="also write fp16 graphs (TensorRT 11 strongly typed)")
    p.add_argument("--no-slim", action="store_true", help="skip onnxslim")
    p.add_argument("--engine", action="store_true", help="build TensorRT engines for the exported graphs")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="TensorRT precision")
    p.add_argument("--build-only", action="store_true", help="with --engine: build and cache, do not run")
    p.add_argument("--cache-dir", type=Path, help="engine cache root (default cache_dir()/trt)")
    p.add_argument("--workspace-gb", type=float, default=4.0, help="TensorRT builder workspace")
    return p


def _load(args: argparse.Namespace):  # -> OMGSeg
    import torch  # noqa: PLC0415

    from ..config import get_model_config  # noqa: PLC0415

    if args.random_weights:
        from ..model.omg_seg import build_model  # noqa: PLC0415

        torch.manual_seed(0)
        return build_model(get_model_config(args.model))
    from ..model.checkpoint import load_model  # noqa: PLC0415

    model, _ = load_model(args.model, weights=args.weights, backbone_weights=args.backbone_weights)
    return model.float().eval()


def run(args: argparse.Namespace) -> int:
    from ..runtime.onnx_io import check_resolution, padded_size_for  # noqa: PLC0415

    if args.build_only and not args.engine:
        raise ValueError("--build-only needs --engine")
    if args.engine:  # fail before a minutes-long export when engines cannot be built here anyway
        import torch  # noqa: PLC0415

        from ..runtime.trt_backend import TrtUnavailableError, import_tensorrt  # noqa: PLC0415

        import_tensorrt()
        if not torch.cuda.is_available():
            raise TrtUnavailableError("no CUDA GPU (torch.cuda.is_available() is False)")
    t0 = time.monotonic()
    model = _load(args)
    cfg = model.cfg
    size = args.size or padded_size_for(args.long_side or cfg.long_side, args.aspect, cfg.pad_size_divisor)
    check_resolution(cfg, *size)
    if args.out is not None:
        from ..runtime.onnx_export import export_onnx  # noqa: PLC0415

        bundle = export_onnx(model, args.out, size, max_prompts=args.max_prompts, variant=args.variant,
                             fp16=args.fp16, slim=not args.no_slim)
    else:
        if args.variant != "image":
            raise ValueError("--variant head needs --out (the cache holds image bundles only)")
        from ..runtime.ort_backend import ensure_bundle  # noqa: PLC0415

        bundle = ensure_bundle(model, size, max_prompts=args.max_prompts, fp16=args.fp16)
    print(f"ONNX bundle: {bundle.root} ({size[0]}x{size[1]}, {time.monotonic() - t0:.1f} s)")
    for graph, ops in bundle.meta.get("ops", {}).items():  # the static check passed for every op listed here
        print(f"  {graph} graph ops (all in trt_supported_ops.txt): "
              + ", ".join(f"{op} x{n}" for op, n in ops.items()))
    if args.engine:
        from ..runtime.trt_backend import EngineCache, TrtBackend  # noqa: PLC0415

        cache = EngineCache(args.cache_dir) if args.cache_dir else None
        backend = TrtBackend(bundle, precision=args.precision, cache=cache, workspace_gb=args.workspace_gb,
                             build_only=args.build_only)
        print(f"TensorRT engines ready under {backend.cache.root} ({time.monotonic() - t0:.1f} s total)")
        backend.release()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..model.checkpoint import CheckpointError  # noqa: PLC0415
    from ..runtime.onnx_io import OnnxCorruptError, OnnxMismatchError  # noqa: PLC0415
    from ..runtime.trt_backend import EngineBuildError, TrtUnavailableError  # noqa: PLC0415

    try:
        return run(args)
    except TrtUnavailableError as e:
        print(f"omg-seg-export: cannot build TensorRT engines here: {e}", file=sys.stderr)
        return EXIT_NO_TRT
    except (ValueError, TypeError, KeyError, OSError, CheckpointError, OnnxCorruptError, OnnxMismatchError,
            EngineBuildError) as e:  # OSError: unwritable --out, disk full, missing weights file
        print(f"omg-seg-export: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
