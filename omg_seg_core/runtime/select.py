"""Pick a backend by name, falling back TensorRT -> ONNX Runtime -> PyTorch with a clear warning.

    make_backend("tensorrt", model, device="cuda:0", dtype="float16", input_size=(768, 1024))

- "torch": `TorchBackend` (eager; `compile=True` wraps it in torch.compile); any input size.
- "onnxruntime": `OrtBackend` on the model's export at `input_size` (exported on demand into cache_dir()/onnx,
  or the bundle given as `onnx_dir`); CPU threads `threads`; CUDA provider when device is cuda and it exists.
- "tensorrt": `TrtBackend` engines built from that export (cache_dir()/trt), fp16 when dtype is float16.

When a backend cannot load (library missing, no GPU, engine build failure, unreadable or mismatching ONNX) and
`fallback=True`, the next one in the chain is tried and a `RuntimeWarning` (also logged) says what failed and
what is used instead. Configuration mistakes (unknown name, bad size / dtype) raise ValueError and never fall back.
The chosen backend's `name` tells which one runs; static-size backends expose `input_size` (Hp, Wp) — callers
must pad their input to exactly that (the masks come at Hp/4 x Wp/4).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from .backend import Backend
from .onnx_io import OnnxCorruptError, OnnxMismatchError, check_resolution, make_region_fn, padded_size_for

LOG = logging.getLogger(__name__)
CHAIN = ("tensorrt", "onnxruntime", "torch")
ALIASES = {"trt": "tensorrt", "ort": "onnxruntime", "onnx": "onnxruntime", "pytorch": "torch"}
_HALF = {"float16", "fp16", "half", torch.float16}


class BackendUnavailableError(RuntimeError):
    """Every backend from the requested one down the chain failed to load (message lists why)."""


def canonical_name(name: str) -> str:
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in CHAIN:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(CHAIN)} (aliases {sorted(ALIASES)})")
    return key


def default_input_size(model: torch.nn.Module) -> tuple[int, int]:
    """Static size for a 4:3 landscape camera at the model's long side (TINY: 256x320, CONVL: 768x1024)."""
    cfg = model.cfg
    return padded_size_for(cfg.long_side, 4 / 3, cfg.pad_size_divisor)


def _load_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "this backend cannot run here" (fall back), as opposed to caller mistakes."""
    from .ort_backend import OrtUnavailableError  # noqa: PLC0415
    from .trt_backend import EngineBuildError, TrtUnavailableError  # noqa: PLC0415

    return (TrtUnavailableError, EngineBuildError, OrtUnavailableError, OnnxCorruptError, OnnxMismatchError,
            ImportError, OSError, RuntimeError)


def _build(name: str, model: Optional[torch.nn.Module], device: str, dtype: Any, *, compile: bool,
           input_size: Optional[tuple[int, int]], onnx_dir: Optional[Union[str, Path]], threads: Optional[int],
           max_prompts: int, cache_root: Optional[Path], build_only: bool, progress: Callable[[str], None]) -> Backend:
    if name == "torch":
        from .torch_backend import TorchBackend  # noqa: PLC0415

        if model is None:
            raise ValueError("backend 'torch' needs a model")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        return TorchBackend(model, device=device, dtype=dtype, compile=compile)
    from .onnx_io import OnnxBundle  # noqa: PLC0415
    from .ort_backend import OrtBackend, ensure_bundle  # noqa: PLC0415

    half = dtype in _HALF
    if onnx_dir is not None:
        bundle = OnnxBundle.load(onnx_dir)
        if model is not None:
            bundle.validate(model.cfg, None, input_size)
    else:
        if model is None:
            raise ValueError(f"backend {name!r} needs a model or an export bundle (onnx_dir)")
        size = input_size or default_input_size(model)
        check_resolution(model.cfg, *size)
        # TensorRT 11 builds fp16 from the fp16 graph; export it too when it may be needed
        bundle = ensure_bundle(model, size, max_prompts=max_prompts, fp16=half,
                               root=cache_root / "onnx" if cache_root else None, progress=progress)
    if name == "onnxruntime":
        # fp16 graphs when asked for and present (they pay off with the CUDA provider; on CPU fp32 is faster)
        return OrtBackend(bundle, device=str(device), threads=threads, fp16=half and "image_fp16" in bundle.meta["files"],
                          region_fn=make_region_fn(model))
    from .trt_backend import EngineCache, TrtBackend  # noqa: PLC0415

    dev = str(device) if str(device).startswith("cuda") else "cuda:0"
    return TrtBackend(bundle, precision="fp16" if half else "fp32", device=dev,
                      cache=EngineCache(cache_root / "trt") if cache_root else None, build_only=build_only,
                      progress=progress, region_fn=make_region_fn(model))


def make_backend(kind: Union[str, Backend], model: Optional[torch.nn.Module] = None, device: str = "cpu",
                 dtype: Any = "float32", *, compile: bool = False, input_size: Optional[tuple[int, int]] = None,
                 onnx_dir: Optional[Union[str, Path]] = None, threads: Optional[int] = None, max_prompts: int = 16,
                 cache_root: Optional[Union[str, Path]] = None, fallback: bool = True, build_only: bool = False,
                 progress: Callable[[str], None] = print, **unused: Any) -> Backend:
    """Backend `kind` ("tensorrt" | "onnxruntime" | "torch", or aliases trt/ort/onnx/pytorch; a Backend instance
    passes through) for `model` (an OMGSeg). input_size: static (Hp, Wp) for ONNX Runtime / TensorRT, multiples
    of 32 (default: 4:3 at the model's long side). cache_root: replaces cache_dir() for exports and engines.
    fallback: on a load failure try the next backend in TensorRT -> ONNX Runtime -> PyTorch with a warning;
    False raises BackendUnavailableError instead. Other keyword arguments are ignored (predictor pass-through)."""
    if not isinstance(kind, str):
        return kind
    first = canonical_name(kind)
    chain = CHAIN[CHAIN.index(first):] if fallback else (first,)
    errors = _load_errors()
    failures: list[str] = []
    root = Path(cache_root) if cache_root is not None else None
    for i, name in enumerate(chain):
        dev = device
        if name == "torch" and str(device).startswith("cuda") and not torch.cuda.is_available() and i > 0:
            dev = "cpu"  # last resort after GPU backends failed for lack of a GPU
        try:
            backend = _build(name, model, dev, dtype, compile=compile, input_size=input_size, onnx_dir=onnx_dir,
                             threads=threads, max_prompts=max_prompts, cache_root=root, build_only=build_only,
                             progress=progress)
        except errors as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
            if i + 1 < len(chain):
                msg = (f"backend {name!r} cannot load ({type(e).__name__}: {e}); falling back to "
                       f"{chain[i + 1]!r}")
                LOG.warning(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
            continue
        return backend
    raise BackendUnavailableError("no backend could load:\n  " + "\n  ".join(failures))


__all__ = ["make_backend", "canonical_name", "default_input_size", "BackendUnavailableError", "CHAIN"]
