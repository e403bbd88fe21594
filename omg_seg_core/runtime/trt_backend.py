"""TensorRT backend: engines built from the exported ONNX graphs with the TensorRT Python API, cached on disk.

Precision per TensorRT major version (TensorRT 11 removed the FP16/INT8 builder flags):
- TensorRT 10.x: the fp32 ONNX graph, `BuilderFlag.FP16` for "fp16" (TensorRT picks fp16 kernels per layer;
  normalisation / softmax / reduce / grid-sample layers are asked to stay fp32);
- TensorRT 11+: strongly typed networks, so "fp16" needs the fp16 ONNX graph (`omg-seg-export --fp16`), whose
  types TensorRT keeps as written (LayerNorm / Softmax / GridSample sampling left in fp32 by the exporter).

Engine cache (`cache_dir()/trt/trt-<version>_sm<cc>/`): one `<graph>-<onnx sha256[:16]>-<shape>-<precision>.engine`
per key plus a JSON sidecar (full key + sha256 of the engine bytes) and one `timing.cache` per TensorRT version and
GPU. An engine whose sidecar is missing or does not match (truncated / corrupt file, other key) is deleted and
rebuilt; an engine that TensorRT refuses to deserialise (other TensorRT version, other GPU) is rebuilt once — a
second failure raises instead of looping (cache logic: trt_cache.py, TensorRT-free and tested everywhere).
`tensorrt` is imported lazily, so this module imports on machines without it.

Batch: the image graph's batch dimension is dynamic (onnx_io.IMAGE_BATCH_AXIS); its engine gets ONE optimisation
profile with min 1, opt = max = `max_batch` (the node: its number of cameras, all of which usually deliver), and
`max_batch` is part of the engine's cache key. A call with more images than that is refused with the reason;
`predict.batch.encode_images` (set_images, CameraSessions) splits a larger batch into calls of at most `max_batch`.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .backend import ImageFeatures, PromptOutputs
from .onnx_io import (HEAD_INPUTS, IMAGE_INPUT, OnnxBundle, features_from_outputs, prompt_feeds,
                      prompt_outputs_from, split_prompts)
from .trt_cache import PRECISIONS, EngineBuildError, EngineCache, EngineKey, file_sha256, load_or_build

LOG = logging.getLogger(__name__)
Progress = Callable[[str], None]


class TrtUnavailableError(RuntimeError):
    """TensorRT or a CUDA GPU is missing: the caller may fall back to another backend."""


def import_tensorrt() -> Any:
    """Import `tensorrt` or raise TrtUnavailableError with the reason."""
    try:
        import tensorrt as trt  # noqa: PLC0415 (optional dependency)
    except Exception as e:  # ImportError, or a broken install raising OSError on its shared libraries
        raise TrtUnavailableError(f"tensorrt not importable ({type(e).__name__}: {e})") from e
    return trt


def trt_major(version: str) -> int:
    """'10.3.0.30' -> 10. Raises ValueError on an unparsable version string."""
    try:
        return int(str(version).split(".")[0])
    except ValueError as e:
        raise ValueError(f"cannot parse TensorRT version {version!r}") from e


class _ElapsedPrinter:
    """Prints 'building <what>: 42 s' every `period` seconds while a build runs (TensorRT's own progress monitor
    reports phases, but some phases take minutes without a step)."""

    def __init__(self, what: str, progress: Progress, period: float = 15.0) -> None:
        self.what, self.progress, self.period = what, progress, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.progress(f"building {self.what}: {time.monotonic() - self.t0:.0f} s elapsed")

    def __enter__(self) -> "_ElapsedPrinter":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _progress_monitor(trt: Any, progress: Progress) -> Any:
    """A trt.IProgressMonitor printing top-level phases (TensorRT >= 10 has it; None otherwise)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.t0 = time.monotonic()

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            if parent_phase is None:
                progress(f"  [{time.monotonic() - self.t0:6.1f} s] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


def _keep_sensitive_layers_fp32(trt: Any, network: Any, config: Any) -> int:
    """TensorRT 10 + FP16 flag: ask for fp32 in normalisation, softmax, reductions and grid sampling (the split the
    fp16 ONNX graph encodes for TensorRT 11; LayerNorm in fp16 overflows after attention, TensorRT warns)."""
    names = ("NORMALIZATION", "SOFTMAX", "REDUCE", "GRID_SAMPLE")
    sensitive = {getattr(trt.LayerType, n) for n in names if hasattr(trt.LayerType, n)}
    flag = getattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS", None)
    if flag is None or not sensitive:
        return 0
    config.set_flag(flag)
    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in sensitive:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                if layer.get_output(j).dtype in (trt.float32, trt.float16):
                    layer.set_output_type(j, trt.float32)
            count += 1
    return count


def batch_profile(inputs: list[tuple[str, tuple[int, ...]]], max_batch: int
                  ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shapes of an optimisation profile for the network inputs [(name, shape)] whose batch
    (dim 0) is dynamic (-1): 1, max_batch, max_batch. Empty when every input is static. Another dynamic dimension
    is an EngineBuildError (the exports have static image sizes)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    out = {}
    for name, shape in inputs:
        shape = tuple(int(s) for s in shape)
        if -1 in shape[1:]:
            raise EngineBuildError(f"input {name} has a dynamic dimension other than the batch: {shape}")
        if shape and shape[0] == -1:
            rest = shape[1:]
            out[name] = ((1,) + rest, (max_batch,) + rest, (max_batch,) + rest)
    return out


def check_input_shape(name: str, got: tuple[int, ...], spec: tuple[int, ...],
                      batch_range: Optional[tuple[int, int]] = None) -> None:
    """An input tensor's shape against the engine's: static dims equal, a dynamic batch (-1) within the profile's
    [min, max] (`batch_range`). ValueError naming the tensor otherwise."""
    if len(got) != len(spec) or any(s != -1 and s != g for s, g in zip(spec, got)):
        raise ValueError(f"TensorRT input {name}: shape {tuple(got)}, engine expects {tuple(spec)} (-1 = any batch)")
    if spec and spec[0] == -1 and batch_range is not None and not batch_range[0] <= got[0] <= batch_range[1]:
        raise ValueError(f"TensorRT input {name}: batch {got[0]} outside the engine's profile {batch_range[0]}.."
                         f"{batch_range[1]} (built for max_batch {batch_range[1]}: one image per camera)")


def build_engine(onnx_path: Path, precision: str, timing_cache: bytes = b"", workspace_gb: float = 4.0,
                 progress: Progress = print, max_batch: int = 1) -> tuple[bytes, bytes]:
    """Parse `onnx_path` and build a serialised engine. Returns (engine bytes, updated timing cache bytes).

    TensorRT 10: weakly typed network, `BuilderFlag.FP16` for fp16. TensorRT 11+: strongly typed network (the
    ONNX graph's types are the precision; pass the fp16 graph for fp16). Inputs with a dynamic batch get one
    optimisation profile 1 / max_batch / max_batch (batch_profile)."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = trt_major(trt.__version__)
    flags = 0
    strongly = major >= 11
    if strongly and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from file: resolves external weight files next to it
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {onnx_path}:\n  " + "\n  ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    shapes = batch_profile([(network.get_input(i).name, tuple(network.get_input(i).shape))
                            for i in range(network.num_inputs)], max_batch)
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    if precision == "fp16" and not strongly:
        config.set_flag(trt.BuilderFlag.FP16)
        _keep_sensitive_layers_fp32(trt, network, config)
    try:
        cache = config.create_timing_cache(timing_cache)
    except Exception:  # a corrupt timing cache only costs build time: start a fresh one
        LOG.warning("TensorRT timing cache unreadable: starting a new one")
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    what = f"{Path(onnx_path).name} ({precision}, TensorRT {trt.__version__}" + (
        f", batch 1..{max_batch})" if shapes else ")")
    progress(f"building TensorRT engine for {what}; this takes minutes the first time")
    with _ElapsedPrinter(what, progress) as timer:
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine for {onnx_path} (see the TensorRT log above)")
    progress(f"built {what} in {time.monotonic() - timer.t0:.1f} s")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


def _torch_dtype(trt: Any, dt: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    return table[dt]


class _TrtGraph:
    """One engine + execution context; inputs/outputs are CUDA torch tensors (no pycuda needed). Inputs with a
    dynamic batch (-1) take any batch within the engine's optimisation profile (batch_profile)."""

    def __init__(self, trt: Any, engine: Any, device: torch.device) -> None:
        self.engine, self.device = engine, device
        self.context = engine.create_execution_context()
        self.inputs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self.outputs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self.batch_range: dict[str, tuple[int, int]] = {}  # dynamic-batch input -> (min, max) of its profile
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            spec = (tuple(engine.get_tensor_shape(name)), _torch_dtype(trt, engine.get_tensor_dtype(name)))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs)[name] = spec
            if is_input and spec[0] and spec[0][0] == -1:
                lo, _, hi = engine.get_tensor_profile_shape(name, 0)
                self.batch_range[name] = (int(lo[0]), int(hi[0]))

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keep = []  # references keep the converted inputs alive until the stream is synchronised
        for name, (shape, dtype) in self.inputs.items():
            t = feeds[name].to(self.device, dtype).contiguous()
            check_input_shape(name, tuple(t.shape), shape, self.batch_range.get(name))
            if name in self.batch_range:
                self.context.set_input_shape(name, tuple(t.shape))
            keep.append(t)
            self.context.set_tensor_address(name, t.data_ptr())
        # fresh outputs each call: the image graph's outputs are cached by the predictor and must not be reused;
        # their shapes follow the input shapes just set (the batch)
        outs = {n: torch.empty(tuple(self.context.get_tensor_shape(n)), dtype=d, device=self.device)
                for n, (_, d) in self.outputs.items()}
        for name, t in outs.items():
            self.context.set_tensor_address(name, t.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        stream.synchronize()
        return {n: t.float() if t.is_floating_point() else t for n, t in outs.items()}


class TrtBackend:
    """Backend on TensorRT engines built from an `OnnxBundle` (static input size, max prompts per call, image
    batches of 1..max_batch: one image per camera).

    Raises TrtUnavailableError when tensorrt or a CUDA GPU is missing (the selector falls back)."""

    name = "tensorrt"

    def __init__(self, bundle: OnnxBundle, precision: str = "fp16", device: str = "cuda:0",
                 cache: Optional[EngineCache] = None, workspace_gb: float = 4.0, build_only: bool = False,
                 progress: Progress = print,
                 region_fn: Optional[Callable[[ImageFeatures, torch.Tensor], Optional[torch.Tensor]]] = None,
                 max_batch: int = 1) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {max_batch!r}")
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise TrtUnavailableError("no CUDA GPU (torch.cuda.is_available() is False)")
        self.device = device
        self._dev = torch.device(device)
        self.bundle, self.precision = bundle, precision
        self._region_fn = region_fn
        self.input_size = bundle.input_size
        self.max_prompts = bundle.max_prompts
        # the image graph of an image bundle has a dynamic batch; head-only and prompt graphs are batch 1
        self.max_batch = max_batch if bundle.variant == "image" else 1
        self.cache = cache or EngineCache()
        cc = torch.cuda.get_device_capability(self._dev)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        strongly = trt_major(trt.__version__) >= 11
        self._graphs: dict[str, Optional[_TrtGraph]] = {}
        for graph in ("image", "prompt"):
            onnx_path = bundle.path(graph, fp16=(precision == "fp16" and strongly))
            shape = bundle.input_shape(graph)
            batch = self.max_batch if graph == "image" else 1
            key = EngineKey(graph, trt.__version__, (int(cc[0]), int(cc[1])), file_sha256(onnx_path), shape, precision,
                            batch)
            timing = self.cache.read_timing_cache(key)

            def build(p: Path = onnx_path, t: bytes = timing, b: int = batch) -> tuple[bytes, bytes]:
                return build_engine(p, precision, t, workspace_gb, progress, max_batch=b)

            engine = load_or_build(onnx_path, key, self.cache, runtime.deserialize_cuda_engine, build, progress)
            progress(f"TensorRT {graph} engine ready: {self.cache.engine_path(key)}")
            self._graphs[graph] = None if build_only else _TrtGraph(trt, engine, self._dev)

    def _graph(self, name: str) -> _TrtGraph:
        g = self._graphs.get(name)
        if g is None:
            raise RuntimeError("TrtBackend was created with build_only=True or released: it cannot run")
        return g

    @torch.inference_mode()
    def run_image(self, image: torch.Tensor) -> ImageFeatures:
        if self.bundle.variant == "head":
            raise RuntimeError("this bundle holds the head-only graph (features in): use run_features")
        hw = (int(image.shape[-2]), int(image.shape[-1]))
        return features_from_outputs(self._graph("image")({IMAGE_INPUT: self.bundle.pad_image(image)}), hw)

    @torch.inference_mode()
    def run_features(self, feats: list[torch.Tensor]) -> ImageFeatures:
        """Head-only bundles: the four backbone maps [f4, f8, f16, f32] at the static size -> ImageFeatures."""
        return features_from_outputs(self._graph("image")(dict(zip(HEAD_INPUTS, feats))))

    @torch.inference_mode()
    def run_prompt(self, features: ImageFeatures, boxes: torch.Tensor, image_size: tuple[int, int]) -> PromptOutputs:
        chunks = []
        for box_chunk, valid, n in split_prompts(boxes, self.max_prompts):
            chunks.append((self._graph("prompt")(prompt_feeds(features, box_chunk, valid, image_size)), n))
        return prompt_outputs_from(chunks, features)

    def region_embed(self, features: ImageFeatures, mask_logits: torch.Tensor) -> Optional[torch.Tensor]:
        """CLIP region embeddings [N, E] (ConvNeXt-L; computed in PyTorch) or None without a CLIP head."""
        return None if self._region_fn is None else self._region_fn(features, mask_logits)

    def release(self) -> None:
        self._graphs = {k: None for k in self._graphs}
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


__all__ = ["TrtBackend", "TrtUnavailableError", "EngineBuildError", "EngineKey", "EngineCache", "build_engine",
           "batch_profile", "check_input_shape",
           "load_or_build", "import_tensorrt", "trt_major", "file_sha256", "PRECISIONS"]
