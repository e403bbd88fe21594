"""CLIP text tower of open_clip `convnext_large_d_320`: the text encoder of the released ConvNeXt-L OMG-Seg.

Only the text part is built (open_clip `TextTransformer`, ~124M params at the default config) — the 200M image
tower lives in the model's backbone — with `pretrained=None` semantics (no download), then loaded from the
user's open_clip weights file (full CLIP state_dict: text keys at top level, `visual.*` ignored).

encode(phrases) follows the official `OpenCLIPBackboneText.forward`: token embedding + positional embedding ->
causal transformer -> ln_final -> EOT token @ text_projection (== open_clip `CLIP.encode_text`), then L2-norm.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from .base import TextEncoder

CLIP_MODEL_NAME = "convnext_large_d_320"
#: Keys of an open_clip CLIP state_dict that belong to the text tower.
_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def _default_text_cfg() -> tuple[int, dict[str, Any]]:
    from open_clip import get_model_config

    cfg = get_model_config(CLIP_MODEL_NAME)
    if cfg is None:  # pragma: no cover - depends on the installed open_clip
        raise RuntimeError(f"open_clip has no config for {CLIP_MODEL_NAME!r}")
    return int(cfg["embed_dim"]), dict(cfg["text_cfg"])


def extract_text_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Text-tower entries of an open_clip CLIP state_dict (accepts `{'state_dict': ...}` and a `module.` prefix)."""
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    out = {}
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith(_TEXT_PREFIXES):
            out[k] = v
    return out


def _file_fingerprint(path: Path) -> str:
    """Cheap content fingerprint (size + first/last MiB) for the embedding-cache key; hashing 1.7 GB is slow."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def _state_fingerprint(module: torch.nn.Module) -> str:
    """Hash of every tensor's shape and first 4096 values: tells differently initialised towers apart cheaply."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(f"{k}{tuple(v.shape)}".encode())
        h.update(v.detach().flatten()[:4096].float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


class ClipTextEncoder(TextEncoder):
    """open_clip text tower -> L2-normalised [N, E] (E = 768 for convnext_large_d_320).

    Args:
        weights: open_clip weights file (.bin/.pt/.pth/.safetensors) or an already loaded state_dict. None keeps
            random weights (only useful for tests; the name then says "random").
        device: where the tower runs.
        text_cfg / embed_dim: override the open_clip config (tests build a shrunken tower to stay cheap).
    """

    def __init__(self, weights: Union[str, os.PathLike, Mapping[str, torch.Tensor], None] = None,
                 device: Union[str, torch.device] = "cpu", text_cfg: Optional[dict[str, Any]] = None,
                 embed_dim: Optional[int] = None) -> None:
        from open_clip import get_tokenizer
        from open_clip.model import _build_text_tower

        d_embed, d_cfg = _default_text_cfg()
        self.embed_dim = int(embed_dim if embed_dim is not None else d_embed)
        cfg = dict(d_cfg if text_cfg is None else text_cfg)
        self.tokenizer = get_tokenizer(CLIP_MODEL_NAME)
        self.model = _build_text_tower(self.embed_dim, cfg).eval()
        m = self.model
        self._truncatable = (getattr(m, "pool_type", "") == "argmax" and getattr(m, "cls_emb", None) is None
                             and not getattr(m, "use_pad_mask", False) and getattr(m, "attn_mask", None) is not None
                             and m.text_projection is not None)
        tag = "random"
        if weights is not None:
            if isinstance(weights, Mapping):
                state, tag = weights, "dict"
            else:
                path = Path(weights)
                if not path.is_file():
                    raise FileNotFoundError(f"open_clip weights file not found: {str(path)!r}")
                state = _load_any(path)
                tag = _file_fingerprint(path)
            self.load_state_dict(state)
        self.device = torch.device(device)
        self.model.to(self.device)
        size = "" if text_cfg is None else f"-w{cfg.get('width')}l{cfg.get('layers')}e{self.embed_dim}"
        if tag in ("random", "dict"):  # no file to fingerprint: key the embedding cache on the weights themselves
            tag = f"{tag}{_state_fingerprint(self.model)}"
        self.name = f"clip_{CLIP_MODEL_NAME}{size}-{tag}"

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the text keys of a full open_clip CLIP state_dict; missing/unexpected keys -> ValueError."""
        text = extract_text_state_dict(state)
        if not text:
            raise ValueError("open_clip weights contain no text-tower keys (expected token_embedding.weight, "
                             "transformer.resblocks.*, ln_final.*, text_projection)")
        res = self.model.load_state_dict(text, strict=False)
        missing = [k for k in res.missing_keys if k != "attn_mask"]
        if missing or res.unexpected_keys:
            raise ValueError(f"open_clip text weights do not match the {CLIP_MODEL_NAME} text tower: "
                             f"missing {missing[:8]}, unexpected {list(res.unexpected_keys)[:8]}")

    def _encode(self, phrases: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(phrases).to(self.device)
        m = self.model
        if not self._truncatable:
            return m(tokens)
        # Causal attention: the EOT token's output depends only on tokens up to it, so running just the first
        # max(EOT)+1 positions (about 15 of 77 for template prompts) gives the same embedding ~4x cheaper.
        eot = tokens.argmax(dim=-1)  # EOT has the highest token id (open_clip pool_type "argmax")
        n = int(eot.max()) + 1
        x = m.token_embedding(tokens[:, :n]) + m.positional_embedding[:n]
        x = m.transformer(x, attn_mask=m.attn_mask[:n, :n])
        x = m.ln_final(x)[torch.arange(x.shape[0], device=x.device), eot]
        return m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection


def _load_any(path: Path) -> Mapping[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


__all__ = ["ClipTextEncoder", "extract_text_state_dict", "CLIP_MODEL_NAME"]
