"""Pick a backend by name, falling back TensorRT -> ONNX Runtime -> PyTorch with a clear warning.

    make_backend("tensorrt", model, device="cuda:0", dtype="float16")

- "torch": `TorchBackend` (eager; `compile=True` wraps it in torch.compile); any input size.
- "onnxruntime": `OrtBackend` on the model's export (exported on demand into cache_dir()/onnx, or the bundle given
  as `onnx_dir`); CPU threads `threads`; CUDA provider when device is cuda and it exists.
- "tensorrt": `TrtBackend` engines built from that export (cache_dir()/trt), fp16 when dtype is float16.
- "auto": TensorRT where tensorrt and a CUDA GPU exist, else ONNX Runtime (then the usual fallback).

Sizes: with `input_size` (or `onnx_dir`) the backend has that one static size (`input_size` attribute; smaller
inputs are padded inside and the mask outputs cropped back). Without, a `PerSizeBackend` keeps one export/engine
per padded input size it is given, so any camera works and outputs equal PyTorch's.

When a backend cannot load (library missing, no GPU, engine build failure, unreadable or mismatching ONNX) and
`fallback=True`, the next one in the chain is tried and a `RuntimeWarning` (also logged) says what failed and
what is used instead. Configuration mistakes (unknown name, bad size / dtype) raise ValueError and never fall back.
The chosen backend's `name` tells which one runs.
"""
from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from .backend import Backend, ImageFeatures, PromptOutputs
from .onnx_io import OnnxCorruptError, OnnxMismatchError, check_resolution, make_region_fn, padded_size_for

LOG = logging.getLogger(__name__)
CHAIN = ("tensorrt", "onnxruntime", "torch")
ALIASES = {"trt": "tensorrt", "ort": "onnxruntime", "onnx": "onnxruntime", "pytorch": "torch"}  # + "auto"
_HALF = {"float16", "fp16", "half", torch.float16}


class BackendUnavailableError(RuntimeError):
    """Every backend from the requested one down the chain failed to load (message lists why)."""


def canonical_name(name: str) -> str:
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in CHAIN:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(CHAIN)} (aliases {sorted(ALIASES)})")
    return key


def default_input_size(model: torch.nn.Module, long_side: Optional[int] = None) -> tuple[int, int]:
    """Static size for a 4:3 landscape camera at `long_side` (default the model's: TINY 256x320, CONVL 768x1024)."""
    cfg = model.cfg
    return padded_size_for(long_side or cfg.long_side, 4 / 3, cfg.pad_size_divisor)


def _load_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "this backend cannot run here" (fall back), as opposed to caller mistakes."""
    from .ort_backend import OrtUnavailableError  # noqa: PLC0415
    from .trt_backend import EngineBuildError, TrtUnavailableError  # noqa: PLC0415

    return (TrtUnavailableError, EngineBuildError, OrtUnavailableError, OnnxCorruptError, OnnxMismatchError,
            ImportError, OSError, RuntimeError)


def _build(name: str, model: Optional[torch.nn.Module], device: str, dtype: Any, *, compile: bool,
           input_size: Optional[tuple[int, int]], onnx_dir: Optional[Union[str, Path]], threads: Optional[int],
           max_prompts: int, cache_root: Optional[Path], build_only: bool, progress: Callable[[str], None],
           spinning: bool = False, max_batch: int = 1) -> Backend:
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
                          region_fn=make_region_fn(model), spinning=spinning)
    from .trt_backend import EngineCache, TrtBackend  # noqa: PLC0415

    dev = str(device) if str(device).startswith("cuda") else "cuda:0"
    return TrtBackend(bundle, precision="fp16" if half else "fp32", device=dev,
                      cache=EngineCache(cache_root / "trt") if cache_root else None, build_only=build_only,
                      progress=progress, region_fn=make_region_fn(model), max_batch=max_batch)


class PerSizeBackend:
    """An ONNX Runtime / TensorRT backend for ANY padded input size: one static export (and engine) per size seen,
    made on first use and cached on disk (cache_dir()/onnx, /trt), so only the very first frame of a new camera
    size pays for it (robots pre-build with `omg-seg-export --long-side .. --aspect .. --engine --build-only`).
    Outputs then equal PyTorch's exactly (no extra letterbox padding). The first size is built eagerly, so a
    backend that cannot load fails at construction, where make_backend can fall back. Keeps `max_sizes` sizes.
    Thread-safe: the node runs the image graph of the next frames while the current ones are post-processed
    (prompt graph), so two threads may look up sizes at once. A new size's backend is made OUTSIDE the lookup lock
    (a TensorRT build takes minutes: the other sizes keep serving; a second caller of that size waits for it), and
    an evicted size's backend is dropped, not released: a thread may still be running it, and it frees its memory
    when the last reference goes."""

    input_size = None  # accepts any size, like TorchBackend

    def __init__(self, name: str, factory: Callable[[tuple[int, int]], Backend], first_size: tuple[int, int],
                 max_sizes: int = 2) -> None:
        self.name = name
        self._factory, self._max = factory, max_sizes
        self._by_size: dict[tuple[int, int], Backend] = {}
        self._making: dict[tuple[int, int], threading.Event] = {}  # sizes whose backend a thread is making
        self._lock = threading.Lock()
        first = self._get(first_size)
        self.device = first.device
        self.max_batch: Optional[int] = getattr(first, "max_batch", None)  # every size is built alike

    def _get(self, size: tuple[int, int]) -> Backend:
        while True:
            with self._lock:
                if size in self._by_size:
                    self._by_size[size] = self._by_size.pop(size)  # most recently used last
                    return self._by_size[size]
                made = self._making.get(size)
                if made is None:
                    made = self._making[size] = threading.Event()
                    break
            made.wait()  # another thread makes it; then look again (made, or failed: try ourselves)
        try:
            backend = self._factory(size)
            with self._lock:
                self._by_size[size] = backend
                while len(self._by_size) > self._max:
                    self._by_size.pop(next(iter(self._by_size)))  # dropped, not released (class docstring)
            return backend
        finally:
            with self._lock:
                del self._making[size]
            made.set()

    def run_image(self, image: torch.Tensor) -> ImageFeatures:
        return self._get((int(image.shape[-2]), int(image.shape[-1]))).run_image(image)

    def run_prompt(self, features: ImageFeatures, boxes: torch.Tensor, image_size: tuple[int, int]) -> PromptOutputs:
        mf = features.mask_features  # at the static size of the backend that made these features
        return self._get((int(mf.shape[-2]) * 4, int(mf.shape[-1]) * 4)).run_prompt(features, boxes, image_size)

    def region_embed(self, features: ImageFeatures, mask_logits: torch.Tensor) -> Optional[torch.Tensor]:
        with self._lock:
            latest = next(reversed(self._by_size.values()))
        fn = getattr(latest, "region_embed", None)
        return None if fn is None else fn(features, mask_logits)

    def release(self) -> None:
        with self._lock:
            for b in self._by_size.values():
                b.release()
            self._by_size = {}


def _trt_present() -> bool:
    try:
        import tensorrt  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001
        return False
    return torch.cuda.is_available()


def make_backend(kind: Union[str, Backend], model: Optional[torch.nn.Module] = None, device: str = "cpu",
                 dtype: Any = "float32", *, compile: bool = False, input_size: Optional[tuple[int, int]] = None,
                 onnx_dir: Optional[Union[str, Path]] = None, threads: Optional[int] = None, max_prompts: int = 16,
                 cache_root: Optional[Union[str, Path]] = None, fallback: bool = True, build_only: bool = False,
                 long_side: Optional[int] = None, progress: Callable[[str], None] = print, spinning: bool = False,
                 max_batch: int = 1, **unused: Any) -> Backend:
    """Backend `kind` ("tensorrt" | "onnxruntime" | "torch" | "auto", or aliases trt/ort/onnx/pytorch; a Backend
    instance passes through) for `model` (an OMGSeg). "auto": TensorRT where tensorrt and a GPU exist, else ONNX
    Runtime. input_size: one static (Hp, Wp) for ONNX Runtime / TensorRT (multiples of 32); None (default) gives a
    PerSizeBackend that exports per padded size seen, starting with 4:3 at `long_side` (default: the model's).
    onnx_dir: use that export bundle (its size). cache_root: replaces cache_dir() for exports and engines.
    fallback: on a load failure try the next backend in TensorRT -> ONNX Runtime -> PyTorch with a warning;
    False raises BackendUnavailableError instead. spinning: ONNX Runtime worker threads spin while a run lasts
    (faster on a quiet CPU, worse on a busy one; default off: they sleep). max_batch: the most images one image-graph
    call takes (one per camera): TensorRT builds its optimisation profile for it (PyTorch and ONNX Runtime take any
    batch). Other keyword arguments are ignored (predictor pass-through)."""
    if not isinstance(kind, str):
        return kind
    if str(kind).lower() == "auto":
        kind = "tensorrt" if _trt_present() else "onnxruntime"
    first = canonical_name(kind)
    chain = CHAIN[CHAIN.index(first):] if fallback else (first,)
    errors = _load_errors()
    failures: list[str] = []
    root = Path(cache_root) if cache_root is not None else None
    for i, name in enumerate(chain):
        dev = device
        if name == "torch" and str(device).startswith("cuda") and not torch.cuda.is_available() and i > 0:
            dev = "cpu"  # last resort after GPU backends failed for lack of a GPU
        def build(size: Optional[tuple[int, int]], name: str = name, dev: str = dev) -> Backend:
            return _build(name, model, dev, dtype, compile=compile, input_size=size, onnx_dir=onnx_dir,
                          threads=threads, max_prompts=max_prompts, cache_root=root, build_only=build_only,
                          progress=progress, spinning=spinning, max_batch=max_batch)

        try:
            if name != "torch" and input_size is None and onnx_dir is None and model is not None and not build_only:
                # one size per camera may be in use at once (cameras of other aspects): keep them all
                backend = PerSizeBackend(name, build, default_input_size(model, long_side), max(2, max_batch))
            else:
                backend = build(input_size)
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


__all__ = ["make_backend", "canonical_name", "default_input_size", "PerSizeBackend", "BackendUnavailableError",
           "CHAIN"]
