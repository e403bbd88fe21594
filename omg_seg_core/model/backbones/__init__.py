"""Backbones: the interface and lazy registry live in `base.py`."""
from .base import Backbone, available_backbones, build_backbone, register_backbone

__all__ = ["Backbone", "build_backbone", "register_backbone", "available_backbones"]
