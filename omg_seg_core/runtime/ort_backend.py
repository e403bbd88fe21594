"""ONNX Runtime backend: the exported image / prompt graphs in onnxruntime sessions (CPU, or CUDA when present).

`OrtBackend(bundle_dir)` runs an existing export; `OrtBackend.for_model(model, input_size)` exports on demand into
the cache directory (`cache_dir()/onnx/<model>-<weights sha[:12]>-<H>x<W>-p<N>-f<format>/`) and re-exports when the files
there are missing, corrupt or made from other weights — never a crash loop: a failed re-export raises.
Inputs and outputs are torch tensors, like every Backend; the static input size is `input_size` (Hp, Wp): callers
letterbox to it, smaller images are zero-padded bottom/right here, larger ones are an error.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..config import cache_dir
from .backend import ImageFeatures, PromptOutputs
from .onnx_io import (FORMAT, HEAD_INPUTS, IMAGE_INPUT, OnnxBundle, OnnxCorruptError, OnnxMismatchError,
                      features_from_outputs, prompt_feeds, prompt_outputs_from, split_prompts, validate_onnx,
                      weights_sha256)

LOG = logging.getLogger(__name__)
Progress = Callable[[str], None]


class OrtUnavailableError(RuntimeError):
    """onnxruntime missing or a session could not be created (the selector falls back)."""


def available_providers() -> list[str]:
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except Exception:  # noqa: BLE001
        return []
    return list(ort.get_available_providers())


def default_providers(device: str = "cpu") -> list[str]:
    """CUDA first when the device asks for it and the provider exists; CPU always last (ORT's own fallback)."""
    have = available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session_options(ort: Any, threads: Optional[int], spinning: bool) -> Any:
    """onnxruntime SessionOptions: `threads` intra-op threads (None = onnxruntime's default), all graph
    optimisations, errors-only logging, idle workers sleeping unless `spinning` (then they spin while a run
    lasts and stop when it returns)."""
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: constant-folding notes are noise for users
    # idle worker threads sleep instead of spinning: on a robot's busy CPU (and this shared machine) spinning
    # threads fight the other processes; measured 2 threads under load: 131 -> 89 ms for the small model
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if spinning:  # spin only inside run(): idle workers would fight torch's post-processing threads between frames
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    return opts


class OrtBackend:
    """Backend on onnxruntime sessions for one export bundle.

    threads: intra-op threads (None = onnxruntime's default, all cores); providers: onnxruntime provider names
    (default from `device`); fp16: use the bundle's *_fp16.onnx graphs (inputs/outputs stay float32);
    spinning: let idle worker threads spin (lower latency on an otherwise idle CPU, worse under load)."""

    name = "onnxruntime"

    def __init__(self, bundle: OnnxBundle | Path | str, device: str = "cpu", threads: Optional[int] = None,
                 providers: Optional[Sequence[str]] = None, fp16: bool = False,
                 region_fn: Optional[Callable[[ImageFeatures, torch.Tensor], Optional[torch.Tensor]]] = None,
                 spinning: bool = False) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except Exception as e:  # noqa: BLE001
            raise OrtUnavailableError(f"onnxruntime not importable ({type(e).__name__}: {e})") from e
        self.bundle = bundle if isinstance(bundle, OnnxBundle) else OnnxBundle.load(bundle)
        self._region_fn = region_fn  # CLIP region head in Python (make_region_fn), None without one
        self.providers = list(providers) if providers else default_providers(device)
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise OrtUnavailableError(f"onnxruntime providers {missing} not available here "
                                      f"(have {ort.get_available_providers()})")
        # outputs come back as CPU tensors (numpy) whichever provider computes them: that is the device callers see
        self.device = "cpu"
        self.input_size = self.bundle.input_size
        self.max_prompts = self.bundle.max_prompts
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        # The prompt graph is small: on one thread it is as fast (4 boxes: 1.7 vs 1.8 ms with 2) and leaves no second
        # pool of worker threads competing with the image session's (benchmarks/predictor_loop.py).
        opts = {"image": _session_options(ort, threads, spinning), "prompt": _session_options(ort, 1, spinning)}
        self._sessions: dict[str, Any] = {}
        for graph in ("image", "prompt"):
            path = self.bundle.path(graph, fp16=fp16)
            validate_onnx(path, graph=graph, input_size=self.input_size)  # metadata sanity before a long load
            try:
                self._sessions[graph] = ort.InferenceSession(str(path), sess_options=opts[graph],
                                                             providers=self.providers)
            except Exception as e:  # noqa: BLE001 (ORT raises its own Fail/InvalidGraph types)
                raise OnnxCorruptError(f"onnxruntime cannot load {path}: {e}") from e
        self._out_names = {g: [o.name for o in s.get_outputs()] for g, s in self._sessions.items()}

    @classmethod
    def for_model(cls, model: torch.nn.Module, input_size: tuple[int, int], *, max_prompts: int = 16,
                  root: Optional[Path] = None, device: str = "cpu", threads: Optional[int] = None,
                  providers: Optional[Sequence[str]] = None, fp16: bool = False,
                  progress: Progress = print) -> "OrtBackend":
        """Run `model` at `input_size` through its cached export (made on demand, see ensure_bundle)."""
        bundle = ensure_bundle(model, input_size, max_prompts=max_prompts, fp16=fp16, root=root, progress=progress)
        return cls(bundle, device=device, threads=threads, providers=providers, fp16=fp16)

    # ---- Backend -----------------------------------------------------------------------------------------------
    def _run(self, graph: str, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        sess = self._sessions.get(graph)
        if sess is None:
            raise RuntimeError("OrtBackend was released")
        np_feeds = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in feeds.items()}
        for k, v in np_feeds.items():  # the graphs take float32 (and bool valid masks) only
            if v.dtype != np.bool_ and v.dtype != np.float32:
                np_feeds[k] = v.astype(np.float32)
        outs = sess.run(self._out_names[graph], np_feeds)
        return {n: torch.from_numpy(o) for n, o in zip(self._out_names[graph], outs)}

    def run_image(self, image: torch.Tensor) -> ImageFeatures:
        """image [B, 3, h, w] with h <= Hp, w <= Wp (normalised, padded to 32) -> ImageFeatures of batch B (one
        session run: the graph's batch dimension is dynamic); the graph runs at (Hp, Wp), mask_logits / clip_feat
        are cropped back to (h/4, w/4) / (h/32, w/32)."""
        if self.bundle.variant == "head":
            raise RuntimeError(f"{self.bundle.root} holds the head-only graph (features in): use run_features")
        hw = (int(image.shape[-2]), int(image.shape[-1]))
        return features_from_outputs(self._run("image", {IMAGE_INPUT: self.bundle.pad_image(image)}), hw)

    def run_features(self, feats: Sequence[torch.Tensor]) -> ImageFeatures:
        """Head-only bundles: backbone maps [f4, f8, f16, f32] at the static size -> ImageFeatures."""
        if self.bundle.variant != "head":
            raise RuntimeError(f"{self.bundle.root} holds the image graph: use run_image")
        if len(feats) != 4:
            raise ValueError(f"expected 4 feature maps [f4, f8, f16, f32], got {len(feats)}")
        return features_from_outputs(self._run("image", dict(zip(HEAD_INPUTS, feats))))

    def run_prompt(self, features: ImageFeatures, boxes: torch.Tensor, image_size: tuple[int, int]) -> PromptOutputs:
        """boxes [P, 4] xyxy (resized-image px), any P: run in chunks of max_prompts, padded + masked."""
        chunks = [(self._run("prompt", prompt_feeds(features, b, v, image_size)), n)
                  for b, v, n in split_prompts(boxes, self.max_prompts)]
        return prompt_outputs_from(chunks, features)

    def region_embed(self, features: ImageFeatures, mask_logits: torch.Tensor) -> Optional[torch.Tensor]:
        """CLIP region embeddings [N, E] (ConvNeXt-L; computed in PyTorch) or None without a CLIP head."""
        return None if self._region_fn is None else self._region_fn(features, mask_logits)

    def release(self) -> None:
        self._sessions = {}


def ensure_bundle(model: torch.nn.Module, input_size: tuple[int, int], *, max_prompts: int = 16,
                  fp16: bool = False, root: Optional[Path] = None, slim: bool = True,
                  progress: Progress = print) -> OnnxBundle:
    """The export of `model` at `input_size` under `root` (default cache_dir()/onnx), keyed by model name,
    weights hash, size, max prompts and export format (so checkouts of another format sharing the cache do not
    re-export each other's folders). An incomplete, corrupt or mismatching folder is deleted and exported again
    once; a failing export raises (no retry loop)."""
    from .onnx_export import export_onnx  # noqa: PLC0415 (torch.onnx import is slow; only when needed)

    cfg = model.cfg
    weights = weights_sha256(model)
    h, w = input_size
    fmt = FORMAT.rsplit("/", 1)[-1]
    folder = Path(root or cache_dir() / "onnx") / f"{cfg.name}-{weights[:12]}-{h}x{w}-p{max_prompts}-f{fmt}"
    try:
        bundle = OnnxBundle.load(folder)
        bundle.validate(cfg, weights, (h, w))
        if bundle.max_prompts != max_prompts or bundle.variant != "image":
            raise OnnxMismatchError(f"{folder}: max_prompts {bundle.max_prompts} / variant {bundle.variant}")
        for graph in ("image", "prompt"):
            validate_onnx(bundle.path(graph), cfg, weights, (h, w), graph)
            if fp16:
                validate_onnx(bundle.path(graph, fp16=True), cfg, weights, (h, w), graph)
        return bundle
    except (OnnxCorruptError, OnnxMismatchError, FileNotFoundError, KeyError) as e:
        if folder.exists():
            progress(f"ONNX export in {folder} unusable ({e}); exporting again")
            shutil.rmtree(folder, ignore_errors=True)
    return export_onnx(model, folder, (h, w), max_prompts=max_prompts, fp16=fp16, slim=slim, progress=progress)


def ort_threads_default() -> Optional[int]:
    """OMP_NUM_THREADS when set (tests pin 1 thread), else None (onnxruntime decides)."""
    v = os.environ.get("OMP_NUM_THREADS")
    return int(v) if v and v.isdigit() and int(v) > 0 else None


__all__ = ["OrtBackend", "OrtUnavailableError", "available_providers", "default_providers", "ensure_bundle",
           "ort_threads_default"]
