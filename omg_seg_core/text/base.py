"""The text-encoder interface shared by every text tower (CLIP for ConvNeXt-L, MiniLM for the small model).

A `TextEncoder` maps phrases to L2-normalised embeddings in the space the model's class head was trained
against. Vocabulary handling (synonyms, prompt templates, the on-disk cache) lives in `vocabulary.py` and
works with any encoder through this interface only.
"""
from __future__ import annotations

import abc
from typing import Sequence

import torch


class TextEncoder(abc.ABC):
    """Phrases -> L2-normalised embeddings [N, E] (float32, CPU).

    Subclasses set `name` (stable identifier used as the cache key, e.g. "clip_convnext_large_d_320" or
    "minilm_l6"; include anything that changes the embeddings, such as a weights hash) and `embed_dim` (E),
    and implement `_encode`.
    """

    name: str = ""
    embed_dim: int = 0

    @abc.abstractmethod
    def _encode(self, phrases: list[str]) -> torch.Tensor:
        """phrases (non-empty list of non-empty strings) -> float tensor [N, E] (normalisation done by caller)."""

    @torch.inference_mode()
    def encode(self, phrases: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Embed `phrases` -> float32 CPU tensor [N, E], each row L2-normalised.

        Raises ValueError for an empty list or an empty/non-string phrase (naming it).
        """
        if isinstance(phrases, str):
            raise TypeError(f"encode() takes a list of phrases, got the string {phrases!r}")
        phrases = list(phrases)
        if not phrases:
            raise ValueError("encode() got an empty list of phrases")
        for p in phrases:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"encode(): invalid phrase {p!r} (must be a non-empty string)")
        out = []
        for i in range(0, len(phrases), batch_size):
            emb = self._encode(phrases[i:i + batch_size]).detach().float().cpu()
            if emb.ndim != 2 or emb.shape[0] != len(phrases[i:i + batch_size]) or emb.shape[1] != self.embed_dim:
                raise RuntimeError(f"{type(self).__name__}._encode returned shape {tuple(emb.shape)}, "
                                   f"expected [{len(phrases[i:i + batch_size])}, {self.embed_dim}]")
            out.append(emb)
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, embed_dim={self.embed_dim})"


__all__ = ["TextEncoder"]
