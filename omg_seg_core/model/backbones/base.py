"""Backbone interface and registry.

A backbone maps an ImageNet-normalised RGB image [B, 3, H, W] (H, W multiples of 32) to four feature maps
[f4, f8, f16, f32] at strides 4/8/16/32 with `channels` = (C4, C8, C16, C32). Backbones with a CLIP image head
(ConvNeXt-L) also implement `region_embed(f32, mask_logits) -> [N, E]` for open-vocabulary region
classification; others leave `region_embed = None`.

Registry: `build_backbone(name, pretrained)` looks `name` (ModelConfig.backbone) up and imports the module lazily
(timm / open_clip are heavy, and another engineer's backbone must not be imported unless used).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Optional, Union

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class (interface). Subclasses set `channels` and implement `forward`."""

    channels: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: True when `region_embed` is a CLIP image head aligned with the text encoder.
    has_region_embed: bool = False

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        """img [B, 3, H, W] -> [f4, f8, f16, f32], f_s of shape [B, C_s, H/s, W/s]."""
        raise NotImplementedError

    region_embed: Optional[Callable[..., torch.Tensor]] = None


#: name -> (module path, factory name). Factories take `pretrained` (bool, or a weights path where supported).
_REGISTRY: dict[str, tuple[str, str]] = {
    "clip_convnext_large_d_320": ("omg_seg_core.model.backbones.clip_convnext", "build_clip_convnext_large_d_320"),
    "efficientnet_lite0": ("omg_seg_core.model.backbones.efficientnet_lite", "build_efficientnet_lite0"),
}
_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str, factory: Callable[..., nn.Module]) -> None:
    """Register a backbone factory `factory(pretrained=...) -> module` under `name` (e.g. for experiments)."""
    _FACTORIES[name] = factory


def available_backbones() -> list[str]:
    return sorted(set(_REGISTRY) | set(_FACTORIES))


def build_backbone(name: str, pretrained: Union[bool, str, Any] = False,
                   expected_channels: Optional[tuple[int, ...]] = None) -> nn.Module:
    """Build backbone `name`; check its `channels` against `expected_channels` (ModelConfig.backbone_channels)."""
    if name in _FACTORIES:
        factory = _FACTORIES[name]
    elif name in _REGISTRY:
        mod, fn = _REGISTRY[name]
        factory = getattr(import_module(mod), fn)
    else:
        raise KeyError(f"unknown backbone '{name}'; known: {available_backbones()}")
    bb = factory(pretrained=pretrained)
    ch = tuple(getattr(bb, "channels", ()))
    if expected_channels is not None and ch != tuple(expected_channels):
        raise ValueError(f"backbone '{name}' has channels {ch}, config expects {tuple(expected_channels)}")
    return bb


__all__ = ["Backbone", "build_backbone", "register_backbone", "available_backbones"]
