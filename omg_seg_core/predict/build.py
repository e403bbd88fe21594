"""`build_predictor`: a ready `OMGSegPredictor` from a model name, a checkpoint or a built model (the factory
beside segment-anything's `sam_model_registry[...]` + `SamPredictor(sam)`).

    p = build_predictor("tiny")                                             # the shipped omg-seg-tiny
    p = build_predictor("convl", checkpoint="omg_seg_convl.pth", backbone_weights="open_clip_convnext_large_d_320.bin")
    p = build_predictor("runs/stage11/model.pth", backend="onnxruntime", threads=2)
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

import torch
from torch import nn

from ..config import ModelConfig, TaskThresholds
from ..runtime.backend import Backend
from ..text import TextEncoder
from ..text.vocabulary import Vocabulary
from .predictor import OMGSegPredictor


def build_predictor(model: Union[str, os.PathLike, ModelConfig, nn.Module] = "omg_seg_tiny",
                    checkpoint: Optional[Union[str, os.PathLike]] = None,
                    backbone_weights: Optional[Union[str, os.PathLike]] = None,
                    backend: Union[str, Backend] = "torch", device: str = "cpu",
                    dtype: Union[str, torch.dtype] = "float32", long_side: Optional[int] = None,
                    vocabulary: Union[str, os.PathLike, dict, Vocabulary, None] = None,
                    thresholds: Optional[TaskThresholds] = None, text_encoder: Optional[TextEncoder] = None,
                    **backend_kw: Any) -> OMGSegPredictor:
    """Load (or take) the model, make its backend and text encoder, and wrap them in an `OMGSegPredictor`.

    model: model name/alias ("omg_seg_tiny", "tiny", "omg_seg_convl", "convl"), a ModelConfig, a checkpoint path
        (our format), or an already built `OMGSeg` module.
    checkpoint / backbone_weights: weights for a named model (official `omg_seg_convl.pth` + the open_clip
        ConvNeXt-L file, which also holds the CLIP text tower).
    backend: "torch" (default), "onnxruntime", "tensorrt", "auto" or an alias (runtime/select.make_backend, the
        one place that knows them), or a Backend instance; device / dtype / backend_kw go to it (threads,
        onnx_dir, input_size, compile, spinning, cache_root, ...).
    long_side, vocabulary, thresholds, text_encoder: as `OMGSegPredictor`.
    Errors: ValueError / TypeError / FileNotFoundError naming the bad value (unknown names, missing files).
    """
    from ..runtime.select import make_backend

    meta: dict[str, Any] = {}
    if isinstance(model, nn.Module):
        built = model.eval()
    else:
        from ..model.checkpoint import load_model

        built, meta = load_model(model, weights=checkpoint, backbone_weights=backbone_weights)
    side = int(long_side if long_side is not None else built.cfg.long_side)
    backend_kw.setdefault("long_side", side)  # ONNX Runtime / TensorRT pre-build this size
    runner = make_backend(backend, built, device=device, dtype=dtype, **backend_kw)
    return OMGSegPredictor(built, backend=runner, text_encoder=text_encoder, vocabulary=vocabulary,
                           thresholds=thresholds, long_side=side, meta=meta)


__all__ = ["build_predictor"]
