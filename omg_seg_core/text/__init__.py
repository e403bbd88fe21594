"""Text towers and vocabularies (ROS-free). See `base.TextEncoder` and `vocabulary`."""
from __future__ import annotations

from typing import Any

from .base import TextEncoder


def make_text_encoder(kind: str, model: Any = None, weights: Any = None, device: str = "cpu") -> TextEncoder:
    """The text encoder a model config names (`ModelConfig.text_encoder`).

    kind: "clip_convnext_large_d_320" (weights = the user's open_clip weights file or state_dict) or
    "minilm_l6" (uses `model.text_projection`, the learned projection stored in our checkpoints).
    """
    if kind == "clip_convnext_large_d_320":
        from .clip_text import ClipTextEncoder

        return ClipTextEncoder(weights=weights, device=device)
    if kind == "minilm_l6":
        from .sentence_text import SentenceTextEncoder

        proj = getattr(model, "text_projection", None) if model is not None else None
        cfg = getattr(model, "cfg", None)
        return SentenceTextEncoder(embed_dim=cfg.class_embed_dim if cfg is not None else 256, projection=proj)
    raise ValueError(f"unknown text encoder {kind!r}; known: 'clip_convnext_large_d_320', 'minilm_l6'")


__all__ = ["TextEncoder", "make_text_encoder"]
