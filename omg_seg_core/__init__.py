"""omg_seg_core: OMG-Seg in pure PyTorch, ROS-free. Public API is imported lazily (torch import is heavy)."""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .structures import Segments
from .config import ModelConfig, TaskThresholds, get_model_config

_LAZY = {
    "OMGSegPredictor": "omg_seg_core.predict.predictor",
    "build_predictor": "omg_seg_core.predict.build",
    "build_model": "omg_seg_core.model.omg_seg",
    "load_checkpoint": "omg_seg_core.model.checkpoint",
    "load_model": "omg_seg_core.model.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'omg_seg_core' has no attribute '{name}'")


__all__ = ["Segments", "ModelConfig", "TaskThresholds", "get_model_config", *_LAZY]
