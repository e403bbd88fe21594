"""Several images through the image graph in ONE call: `set_images` (what `OMGSegPredictor.set_image` is a batch of
one of) and `encode_images`.

    views = [PredictorView(predictor) for _ in cameras]   # predict/view.py: own cached image, shared model
    set_images(views, [front_rgb, left_rgb])             # ONE backbone + pixel decoder + decoder call of batch 2
    views[0].panoptic(); views[1].prompt(points=[[x, y]])

Typed loosely (anything with the predictor's backend, device, long_side, cfg and `cache_image`), so this module
does not import the predictor back.

Sizes: the images are grouped by padded input size (keep-ratio resize to `long_side`, padding to the divisor) and
each group is ONE batched image-graph call (or several of at most the backend's `max_batch` images, where it has
one: a TensorRT engine's optimisation profile); cameras of one robot usually share a resolution, so one call. Images of
different sizes are not padded to a common size: the extra zero padding would change their outputs (the model sees
a larger letterbox, docs/runtimes.md), and a batch must give every image what `set_image` alone gives it.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Sequence, Union

import numpy as np
import torch

from ..runtime.backend import ImageFeatures
from .preprocess import ImageMeta, preprocess, validate_image


def base_of(predictor: Any) -> Any:
    """The predictor holding the model of `predictor` (itself, or the base of a view)."""
    return getattr(predictor, "_base", predictor)


Encoded = Union[tuple[ImageFeatures, ImageMeta, dict[str, float]], Exception]


def encode_images(predictor: Any, images: Sequence[np.ndarray]) -> list[Encoded]:
    """Pre-process RGB uint8 images [H, W, 3] and run the image graph once per padded size (one batch per size)
    -> per image (features of batch 1, ImageMeta, ms: preprocess (its own), image_graph (its batch's call)), or
    the exception its size's call raised (a backend that cannot be built for that size, out of memory): the other
    sizes' images are still encoded, so one camera of another size cannot stop the others.
    Every image is validated first: a bad one raises ValueError naming its index, nothing runs."""
    _validate_all(images)
    xs: list[torch.Tensor] = []
    metas: list[ImageMeta] = []
    pre_ms: list[float] = []
    for image in images:
        t0 = time.perf_counter()
        # float32 here; each backend casts to its own precision (ORT/TensorRT may keep fp32 inputs)
        x, meta = preprocess(image, predictor.long_side, predictor.cfg.pad_size_divisor, predictor.device)
        pre_ms.append((time.perf_counter() - t0) * 1e3)
        xs.append(x)
        metas.append(meta)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, x in enumerate(xs):
        groups[(int(x.shape[-2]), int(x.shape[-1]))].append(i)
    out: list[Any] = [None] * len(images)
    limit = getattr(predictor.backend, "max_batch", None) or len(images)  # TensorRT: its engine's profile
    for idx in (ids[k:k + limit] for ids in groups.values() for k in range(0, len(ids), limit)):
        x = torch.cat([xs[i] for i in idx]) if len(idx) > 1 else xs[idx[0]]
        try:
            with predictor.graph_lock:  # one image-graph call at a time (OMGSegPredictor.graph_lock)
                t0 = time.perf_counter()
                feats = predictor.backend.run_image(x)
                sync_device(predictor.device)
                graph_ms = (time.perf_counter() - t0) * 1e3
        except Exception as e:  # noqa: BLE001 - handed to the caller per image (docstring)
            for i in idx:
                out[i] = e
            continue
        for i, f in zip(idx, feats.unbatch()):
            out[i] = (f, metas[i], {"preprocess": pre_ms[i], "image_graph": graph_ms})
    return out


def install_images(predictors: Sequence[Any], images: Sequence[np.ndarray],
                   encoded: Sequence[tuple[ImageFeatures, ImageMeta, dict[str, float]]]) -> None:
    """Give predictor i image i with its successful `encode_images` result i (the second half of set_images, for
    callers that encode a batch while the predictors still serve the previous one: multi_camera.CameraSessions)."""
    for p, image, (feats, meta, timings) in zip(predictors, images, encoded):
        p.cache_image(image, feats, meta, timings)


def set_images(predictors: Sequence[Any], images: Sequence[np.ndarray]) -> None:
    """Give predictor i image i (RGB uint8 [H, W, 3]) with ONE image-graph call per padded size for all of them.
    The predictors must share one model (a predictor and its views). After it, each holds its image exactly as
    after its own `set_image`; a rejected image (ValueError, nothing changed) or a failing backend leaves them
    without a new image (the previous one stays only in the first case)."""
    if len(predictors) != len(images):
        raise ValueError(f"set_images: {len(predictors)} predictors for {len(images)} images")
    if not predictors:
        return
    base = base_of(predictors[0])
    if any(base_of(p) is not base for p in predictors):
        raise ValueError("set_images: the predictors must be views of one predictor (one model and backend)")
    if len({id(p) for p in predictors}) != len(predictors):
        raise ValueError("set_images: a predictor appears twice (it holds one image)")
    _validate_all(images)  # before anything is cleared: a rejected batch keeps every cached image
    for p in predictors:
        p.clear_image()
    encoded = encode_images(base, images)
    failed = next((e for e in encoded if isinstance(e, Exception)), None)
    if failed is not None:  # none gets a new image (as when a single call fails)
        raise failed
    install_images(predictors, images, encoded)


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so timings and results are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _validate_all(images: Sequence[np.ndarray]) -> None:
    for i, image in enumerate(images):
        try:
            validate_image(image)
        except (TypeError, ValueError) as e:
            raise type(e)(f"image {i}: {e}" if len(images) > 1 else str(e)) from None


__all__ = ["Encoded", "base_of", "encode_images", "install_images", "set_images", "sync_device"]
