"""open_clip `convnext_large_d_320` image tower as the OMG-Seg backbone (frozen), built offline.

The tower is built with open_clip's own builder from its model config (`pretrained=None`: no download) and its
weights come from a user-supplied open_clip weights file (e.g. the `laion2b_s29b_b131k_ft_soup` checkpoint).
Module names equal the official `OpenCLIPBackbone`, so our state_dict keys are the manifest's `backbone.*` keys:

    visual.trunk.stem.*        -> stem.*
    visual.trunk.stages.{i}.*  -> layer{i+1}.*
    visual.trunk.norm_pre.*    -> norm_pre.*      (nn.Identity for ConvNeXt-L: no tensors)
    visual.trunk.head.*        -> head.0.*        (timm NormMlpClassifierHead: avg pool + LayerNorm2d, fc=Identity)
    visual.head.*              -> head.1.*        (open_clip Mlp 1536 -> 1536 GELU -> 768, fc2 without bias)

The text tower in the same file (transformer.*, token_embedding, ...) is not part of the backbone; the text
encoder reads it from the same path.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from ..classifier import mask_pool
from .base import Backbone

MODEL_NAME = "convnext_large_d_320"
CHANNELS = (192, 384, 768, 1536)
EMBED_DIM = 768

_RULES = [
    (re.compile(r"^visual\.trunk\.stem\."), "stem."),
    (re.compile(r"^visual\.trunk\.stages\.(\d+)\."), None),  # -> layer{i+1}.
    (re.compile(r"^visual\.trunk\.norm_pre\."), "norm_pre."),
    (re.compile(r"^visual\.trunk\.head\."), "head.0."),
    (re.compile(r"^visual\.head\."), "head.1."),
]


def open_clip_key_to_backbone(key: str) -> str | None:
    """open_clip CLIP key -> our backbone key (no `backbone.` prefix); None for non-visual (text tower) keys.
    Raises KeyError for a visual key no rule covers."""
    if not key.startswith("visual."):
        return None
    for pat, repl in _RULES:
        m = pat.match(key)
        if m:
            if repl is None:
                return f"layer{int(m.group(1)) + 1}." + key[m.end():]
            return repl + key[m.end():]
    raise KeyError(f"open_clip visual key '{key}' has no backbone mapping")


def map_open_clip_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip CLIP state_dict -> backbone state_dict (visual keys only; text keys dropped)."""
    out = {}
    for k, v in sd.items():
        nk = open_clip_key_to_backbone(k)
        if nk is not None:
            out[nk] = v
    return out


class CLIPConvNeXtBackbone(Backbone):
    """forward(img [B, 3, H, W]) -> [f4, f8, f16, f32] with channels (192, 384, 768, 1536). Always frozen/eval."""

    channels = CHANNELS
    has_region_embed = True

    def __init__(self) -> None:
        super().__init__()
        import open_clip
        from open_clip.model import _build_vision_tower

        cfg = open_clip.get_model_config(MODEL_NAME)
        if cfg is None:  # pragma: no cover - depends on the open_clip install
            raise RuntimeError(f"open_clip has no model config '{MODEL_NAME}' (open_clip_torch >= 2.x needed)")
        visual = _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"])
        trunk = visual.trunk
        self.stem = trunk.stem
        for i in range(4):
            self.add_module(f"layer{i + 1}", trunk.stages[i])
        self.norm_pre = trunk.norm_pre
        self.head = nn.Sequential(trunk.head, visual.head)
        self.embed_dim = cfg["embed_dim"]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "CLIPConvNeXtBackbone":
        return super().train(False)  # frozen, as the official `fix=True`

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(img)
        outs = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x).contiguous()
            outs.append(x)
        return outs

    def region_embed(self, f32: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """CLIP region embeddings: f32 [1, 1536, h, w] stride-32 features, mask_logits [N, H', W'] (pixel inside
        when logit > 0; resized bilinearly to h x w first) -> [N, 768] (not normalised), as the official
        `get_clip_feature` + `mask_pool` + `forward_feat`."""
        if mask_logits.dim() == 3:
            mask_logits = mask_logits[None]
        pooled = mask_pool(self.norm_pre(f32), mask_logits.to(f32.dtype))  # [1, N, C]
        b, n, c = pooled.shape
        return self.head(pooled.reshape(b * n, c, 1, 1)).reshape(b * n, -1)

    def load_open_clip_weights(self, path: Union[str, Path], assign: bool = False) -> None:
        """Load the visual tower from an open_clip weights file (strict; errors name every bad key)."""
        from ..state_dict import check_state_dict, torch_load, unwrap_state_dict

        sd = map_open_clip_state_dict(unwrap_state_dict(torch_load(path), str(path)))
        if not sd:
            raise ValueError(f"{path}: no 'visual.*' keys: not an open_clip CLIP weights file")
        check_state_dict({k: tuple(v.shape) for k, v in self.state_dict().items()}, sd, source=str(path))
        self.load_state_dict(sd, strict=True, assign=assign)


def build_clip_convnext_large_d_320(pretrained: Union[bool, str, Path, None] = False) -> CLIPConvNeXtBackbone:
    """Random-initialised tower, or (pretrained = path to an open_clip weights file) loaded from it. With a path
    the tower is built on the meta device first: initialising 200M parameters just to overwrite them is slow."""
    if isinstance(pretrained, (str, Path)):
        with torch.device("meta"):
            bb = CLIPConvNeXtBackbone()
        bb.load_open_clip_weights(pretrained, assign=True)
        bb.requires_grad_(False)
        return bb
    if pretrained:
        raise ValueError("clip_convnext_large_d_320: pretrained must be a path to an open_clip weights file "
                         "(no model hub offline)")
    return CLIPConvNeXtBackbone()


__all__ = ["CLIPConvNeXtBackbone", "build_clip_convnext_large_d_320", "map_open_clip_state_dict",
           "open_clip_key_to_backbone", "CHANNELS", "MODEL_NAME"]
