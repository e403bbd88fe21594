"""Build the node's sessions from its parameter values (ROS-free): `build_sessions` gives every camera of parameter
`cameras` its own `VideoSession` (tracker + targets) on ONE predictor (omg_seg_core/multi_camera.py);
`build_session` one session for tools that run one video (bag evaluation).

The node refuses to start without weights: a missing checkpoint is an error that names the file and the
parameter to set. Only `allow_random_weights: true` runs an untrained model (for plumbing tests), and says so.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

from omg_seg_core.config import DATA_ROOT, TaskThresholds, default_checkpoint_path, get_model_config

from omg_seg_core.multi_camera import CameraSessions
from omg_seg_core.video import VideoSession

from .params import depth_config_from

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model cannot be loaded with the given parameters (message says which one to fix)."""


def resolve_path(path: str) -> Path:
    """Expand ~ and $VARS; relative paths are tried against the working directory, then DATA_ROOT (the source
    checkout or the installed share/omg_seg_ros)."""
    p = Path(os.path.expandvars(os.path.expanduser(path)))
    if not p.is_absolute() and not p.exists() and (DATA_ROOT / p).exists():
        p = DATA_ROOT / p
    return p


def threshold_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The TaskThresholds entries among parameter values, for `set_thresholds`: a model-default value (negative
    fraction, params.is_model_default) becomes None, which the predictor resolves to its default_thresholds."""
    from dataclasses import fields

    from .params import is_model_default

    names = {f.name for f in fields(TaskThresholds)}
    return {k: None if is_model_default(k, v) else v for k, v in values.items() if k in names}


def tracker_config_from(values: dict[str, Any]):
    """TrackerConfig from `tracking.<field>` parameter values."""
    from omg_seg_core.tracking import TrackerConfig

    kw = {k[len("tracking."):]: v for k, v in values.items() if k.startswith("tracking.") and k != "tracking.enabled"}
    known = {f for f in TrackerConfig.__dataclass_fields__}
    return TrackerConfig(**{k: v for k, v in kw.items() if k in known})


def build_session(values: dict[str, Any], warn: Callable[[str], None] = log.warning,
                  info: Callable[[str], None] = log.info) -> VideoSession:
    """Load the model named by the parameters and wrap it with tracking (one video). Raises ModelLoadError."""
    predictor = load_predictor(values, warn, info)
    tracker, targets = _tracking(values, warn)()
    return VideoSession(predictor, tracker=tracker, targets=targets, task=values.get("task", "panoptic"),
                        depth_config=depth_config_from(values))


def build_sessions(values: dict[str, Any], cameras: list[str], warn: Callable[[str], None] = log.warning,
                   info: Callable[[str], None] = log.info) -> CameraSessions:
    """Load the model ONCE (its largest batch: one image per camera) and give every camera of `cameras` its own
    session with its own tracker and targets. Raises ModelLoadError."""
    predictor = load_predictor(values, warn, info, batch=len(cameras))
    return CameraSessions(predictor, cameras, tracking=_tracking(values, warn), task=values.get("task", "panoptic"),
                          depth_config=depth_config_from(values))


def load_predictor(values: dict[str, Any], warn: Callable[[str], None] = log.warning,
                   info: Callable[[str], None] = log.info, batch: int = 1) -> Any:
    """The predictor the parameters name (model, weights, backend, device, thresholds, vocabulary, text tower
    warmed up); `batch`: the most images one image-graph call gets (TensorRT's profile; backend auto times its
    choice at this batch). Raises ModelLoadError."""
    from omg_seg_core.predict import build_predictor

    name = values.get("model", "omg_seg_tiny")
    try:
        cfg = get_model_config(name)
    except KeyError as e:
        raise ModelLoadError(f"parameter model: {e.args[0]}") from None
    weights: Optional[str] = values.get("weights") or None
    backbone_weights: Optional[str] = values.get("backbone_weights") or None
    model: Any = cfg.name
    if weights is not None:
        wp = resolve_path(weights)
        if not wp.is_file():
            raise ModelLoadError(f"parameter weights: checkpoint '{weights}' not found")
        weights = str(wp)
    elif default_checkpoint_path(cfg.name) is None:
        if not values.get("allow_random_weights", False):
            raise ModelLoadError(
                f"no weights for model '{cfg.name}': models/{cfg.name}.pth is not present and parameter 'weights' "
                "is empty. Set weights:=<checkpoint>, or allow_random_weights:=true to run an UNTRAINED model "
                "(plumbing tests only; its outputs are meaningless)")
        from omg_seg_core.model.omg_seg import build_model

        warn(f"allow_random_weights: running an UNTRAINED {cfg.name} (random head weights); outputs are meaningless")
        model = build_model(cfg, pretrained_backbone=False)
    if backbone_weights is not None:
        bp = resolve_path(backbone_weights)
        if not bp.is_file():
            raise ModelLoadError(f"parameter backbone_weights: file '{backbone_weights}' not found")
        backbone_weights = str(bp)
    vocab_file = values.get("vocabulary_file") or None
    if vocab_file is not None and not str(vocab_file).endswith((".yaml", ".yml")):
        vocab = vocab_file  # a vocabulary name under config/vocabularies
    elif vocab_file is not None:
        vp = resolve_path(vocab_file)
        if not vp.is_file():
            raise ModelLoadError(f"parameter vocabulary_file: '{vocab_file}' not found")
        vocab = str(vp)
    else:
        vocab = None
    long_side = int(values.get("input_long_side", 0)) or None
    threads = int(values.get("cpu_threads", 0)) or None
    _set_torch_threads(threads)
    backend = values.get("backend", "auto")
    device = str(values.get("device", "cpu"))
    on_cpu = device == "cpu" or (device == "auto" and not _cuda_available())
    try:
        predictor = build_predictor(
            model, checkpoint=weights if isinstance(model, str) else None, backbone_weights=backbone_weights,
            backend="torch" if backend == "auto" and on_cpu else backend, device=values.get("device", "cpu"),
            dtype=values.get("dtype", "float32"), long_side=long_side, vocabulary=vocab, threads=threads,
            spinning=bool(values.get("onnxruntime_spinning", False)), max_batch=batch)
        predictor.set_thresholds(**threshold_overrides(values))
        if backend == "auto" and on_cpu:
            _fastest_cpu_backend(predictor, threads, bool(values.get("onnxruntime_spinning", False)), warn, info,
                                 batch=batch)
    except (FileNotFoundError, ValueError, TypeError, KeyError, ImportError) as e:
        raise ModelLoadError(f"cannot load model '{cfg.name}' (backend {values.get('backend')}, device "
                             f"{values.get('device')}): {e}") from e
    try:
        # Load the text tower now: with cached class embeddings it would otherwise load on the first
        # ~/segment_text call (about 2 s for MiniLM) and that caller would wait for it; same for the colour
        # naming table of text ranking (about 0.4 s).
        predictor.text_encoder.encode(["object"])
        from omg_seg_core.predict.colour_names import warm_up

        warm_up()
    except Exception as e:  # text requests will report their own error; frames do not need the text tower
        warn(f"text encoder warm-up failed: {type(e).__name__}: {e}")
    return predictor


def _tracking(values: dict[str, Any], warn: Callable[[str], None]) -> Callable[[], tuple[Any, Any]]:
    """A factory of (tracker, targets) for one camera as the parameters say ((None, None) with tracking off)."""
    if not values.get("tracking.enabled", True):
        return lambda: (None, None)
    try:
        from omg_seg_core.tracking import TargetManager, Tracker
    except ImportError as e:  # tracking is optional: without it ids are per-frame indices
        warn(f"tracking unavailable ({e}); instance ids are per-frame indices")
        return lambda: (None, None)
    tcfg = tracker_config_from(values)
    return lambda: (Tracker(tcfg), TargetManager(tcfg))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _fastest_cpu_backend(predictor: Any, threads: Optional[int], spinning: bool, warn: Callable[[str], None],
                         info: Callable[[str], None], repeats: int = 5, batch: int = 1) -> None:
    """backend "auto" on a CPU: time the image graph of PyTorch eager and ONNX Runtime (exported once into the
    cache) on `batch` 4:3 frames (one per camera) at the predictor's size, keep the faster one and say so. ONNX
    Runtime failing to load keeps PyTorch (with the reason)."""
    import time

    import numpy as np
    import torch

    from omg_seg_core.predict.preprocess import preprocess
    from omg_seg_core.runtime.select import make_backend

    try:
        ort = make_backend("onnxruntime", predictor.model, threads=threads, spinning=spinning,
                           long_side=predictor.long_side, fallback=False, progress=info)
    except Exception as e:  # noqa: BLE001 - any load failure means: PyTorch stays
        warn(f"backend auto: ONNX Runtime unavailable ({type(e).__name__}: {e}); using torch")
        return
    side = predictor.long_side
    x, _ = preprocess(np.full((side * 3 // 4, side, 3), 127, np.uint8), side, predictor.cfg.pad_size_divisor)
    x = x.expand(batch, -1, -1, -1).contiguous()
    times = {}
    for name, backend in (("torch", predictor.backend), ("onnxruntime", ort)):
        runs = []
        with torch.inference_mode():
            for i in range(repeats + 2):
                t0 = time.perf_counter()
                backend.run_image(x)
                if i >= 2:
                    runs.append((time.perf_counter() - t0) * 1e3)
        times[name] = float(np.median(runs))
    best = min(times, key=times.get)
    if best == "onnxruntime":
        predictor.backend = ort
    else:
        ort.release()
    info(f"backend auto: image graph {times['onnxruntime']:.1f} ms with onnxruntime, {times['torch']:.1f} ms with "
         f"torch on this CPU" + (f" (batch of {batch})" if batch > 1 else "") + f" -> {best}")


_initial_torch_threads: Optional[int] = None


def _set_torch_threads(threads: Optional[int]) -> None:
    """torch intra-op threads for this process (the node is the only torch user in its process); None restores
    the count torch started with, so a reconfigure back to cpu_threads 0 undoes an earlier value."""
    import torch

    global _initial_torch_threads
    if _initial_torch_threads is None:
        _initial_torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads or _initial_torch_threads)


def release_device_memory(session: Optional[Any]) -> None:
    """Free the device memory of a VideoSession or CameraSessions (node deactivate on a GPU): every cached image and
    the backend; the session is unusable afterwards."""
    if session is None:
        return
    with session.lock:
        try:
            getattr(session, "release", session.predictor.release)()
        finally:
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass


__all__ = ["ModelLoadError", "build_session", "build_sessions", "load_predictor", "release_device_memory", "threshold_overrides", "tracker_config_from",
           "resolve_path"]
