"""Open-vocabulary class lists and their text classifiers.

A `Vocabulary` is an ordered list of class names, things first then stuff (class id = position). A name may
hold synonyms (`"couch,sofa"`, `"a_or_b"`, `"a/b"`); the text classifier has one embedding per synonym:

    class_embeddings(encoder, vocab) -> float32 [C, K, E]   (K = most synonyms of any class; shorter classes
                                                               are padded by repeating their FIRST synonym)

exactly as the official `tools/gen_cls.py`: every synonym goes through the 14 ViLD templates, the template
embeddings are L2-normalised, averaged, and normalised again. The model's class head takes the max over K.
Results are cached on disk per (encoder, vocabulary, templates) under `cache_dir()/text/`.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from ..config import DATA_ROOT, cache_dir
from .base import TextEncoder

log = logging.getLogger(__name__)

#: The 14 ViLD prompt templates OMG-Seg (after FC-CLIP) uses for every synonym.
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

VOCABULARY_DIR = DATA_ROOT / "config" / "vocabularies"


def split_synonyms(name: str) -> list[str]:
    """`"couch,sofa"` / `"a_or_b"` / `"a/b"` -> synonyms; `_` -> space; lower case (official `split_label`)."""
    x = name.replace("_or_", ",").replace("/", ",").replace("_", " ").lower()
    return [s.strip() for s in x.split(",")]


@dataclass(frozen=True)
class Vocabulary:
    """Ordered class names: `things` (ids 0..T-1) then `stuff` (ids T..C-1). Names may hold synonyms."""

    things: tuple[str, ...]
    stuff: tuple[str, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        for field_name in ("things", "stuff"):
            val = getattr(self, field_name)
            if isinstance(val, str):
                raise TypeError(f"Vocabulary.{field_name} must be a list of names, got the string {val!r}")
            object.__setattr__(self, field_name, tuple(val))
        if not self.names:
            raise ValueError("empty vocabulary: give at least one thing or stuff class name")
        for n in self.names:
            if not isinstance(n, str) or not all(split_synonyms(n)):
                raise ValueError(f"Vocabulary: invalid class name {n!r} (empty name or empty synonym)")
        dup = sorted({n for n in self.names if self.names.count(n) > 1})
        if dup:
            raise ValueError(f"Vocabulary: duplicate class name(s) {dup}")

    @property
    def names(self) -> tuple[str, ...]:
        """Raw names (with synonyms), things then stuff."""
        return self.things + self.stuff

    @property
    def num_things(self) -> int:
        return len(self.things)

    @property
    def num_classes(self) -> int:
        return len(self.things) + len(self.stuff)

    def __len__(self) -> int:
        return self.num_classes

    @property
    def display_names(self) -> list[str]:
        """First synonym of each class (what results and overlays show)."""
        return [split_synonyms(n)[0] for n in self.names]

    def synonyms(self) -> list[list[str]]:
        return [split_synonyms(n) for n in self.names]

    def is_thing(self, class_id: int) -> bool:
        return 0 <= class_id < self.num_things

    def to_dict(self) -> dict[str, Any]:
        return {"things": list(self.things), "stuff": list(self.stuff)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], name: str = "") -> "Vocabulary":
        if not isinstance(d, dict) or not ({"things", "stuff"} & set(d)):
            raise ValueError(f"vocabulary must be a mapping with 'things' and/or 'stuff' lists, got {d!r:.200}")
        for key in ("things", "stuff"):
            if d.get(key) is not None and not isinstance(d[key], (list, tuple)):
                raise ValueError(f"vocabulary '{key}' must be a list of class names, got {d[key]!r:.100}")
        return cls(tuple(d.get("things") or ()), tuple(d.get("stuff") or ()), name=d.get("name", name) or name)

    def digest(self, templates: Sequence[str] = VILD_TEMPLATES) -> str:
        """Stable hash of the synonym lists, the thing/stuff split and the templates (cache key)."""
        h = hashlib.sha256()
        h.update(repr((self.things, self.stuff, tuple(templates))).encode())
        return h.hexdigest()[:16]


def load_vocabulary(source: Union[str, os.PathLike, Vocabulary, dict]) -> Vocabulary:
    """A Vocabulary from a YAML path, a bare name in `config/vocabularies/` (e.g. "coco_panoptic"), a dict with
    things/stuff lists, or a Vocabulary. Unknown file -> FileNotFoundError naming it."""
    import yaml

    if isinstance(source, Vocabulary):
        return source
    if isinstance(source, dict):
        return Vocabulary.from_dict(source)
    path = Path(source)
    if not path.exists() and path.suffix == "" and (VOCABULARY_DIR / f"{path.name}.yaml").exists():
        path = VOCABULARY_DIR / f"{path.name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {str(source)!r} (known names: "
                                f"{sorted(p.stem for p in VOCABULARY_DIR.glob('*.yaml'))})")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        return Vocabulary.from_dict(data, name=path.stem)
    except (ValueError, TypeError, yaml.YAMLError, UnicodeDecodeError) as e:  # a YAML error is not a ValueError
        raise ValueError(f"invalid vocabulary file {str(path)!r}: {type(e).__name__}: {e}") from e


def embed_synonyms(encoder: TextEncoder, synonym_lists: Sequence[Sequence[str]],
                   templates: Sequence[str] = VILD_TEMPLATES) -> torch.Tensor:
    """Synonym lists (one list per class) -> float32 [C, K, E] (see module docstring; official gen_cls math)."""
    counts = [len(s) for s in synonym_lists]
    if not counts or min(counts) == 0:
        raise ValueError(f"embed_synonyms: every class needs at least one synonym, got {list(synonym_lists)!r:.200}")
    prompts = [t.format(s) for syns in synonym_lists for s in syns for t in templates]
    feats = encoder.encode(prompts).reshape(sum(counts), len(templates), -1)  # rows already normalised
    feats = torch.nn.functional.normalize(feats.mean(dim=1), dim=-1)
    k_max = max(counts)
    out, pos = [], 0
    for c in counts:
        cur = feats[pos:pos + c]
        if c < k_max:
            cur = torch.cat([cur, cur[0].repeat(k_max - c, 1)])
        out.append(cur)
        pos += c
    return torch.stack(out)


def _cache_file(encoder: TextEncoder, vocab: Vocabulary, templates: Sequence[str], root: Optional[Path]) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in encoder.name) or type(encoder).__name__
    return (root if root is not None else cache_dir() / "text") / f"{safe}-{vocab.digest(templates)}.pt"


class EmbeddingCancelled(RuntimeError):
    """`class_embeddings` was told to stop (its `cancel` event was set) before it finished."""


#: Classes embedded per step of `class_embeddings` (about 0.1 s with MiniLM on one CPU core): the text tower's lock
#: is released and `cancel` checked between steps.
CLASSES_PER_STEP = 32


def class_embeddings(encoder: TextEncoder, vocab: Vocabulary, templates: Sequence[str] = VILD_TEMPLATES,
                     cache: bool = True, cache_root: Optional[Path] = None, lock: Optional[Any] = None,
                     cancel: Optional[Any] = None) -> torch.Tensor:
    """Text classifier of `vocab` -> float32 [C, K, E], cached at `cache_root` (default cache_dir()/text).

    A cache file that cannot be read or has the wrong shape is recomputed (with a warning) and rewritten. The text
    tower runs CLASSES_PER_STEP classes at a time; each step holds `lock` (a threading.Lock shared with other users
    of the encoder) and a set `cancel` (threading.Event) stops before the next step with EmbeddingCancelled.
    """
    path = _cache_file(encoder, vocab, templates, cache_root)
    if cache and path.exists():
        try:
            emb = torch.load(path, map_location="cpu", weights_only=True)
            if (isinstance(emb, torch.Tensor) and emb.ndim == 3 and emb.shape[0] == vocab.num_classes
                    and emb.shape[2] == encoder.embed_dim and torch.isfinite(emb).all()):
                return emb.float()
            log.warning("text cache %s has unexpected content %s; recomputing", path,
                        tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__)
        except Exception as e:  # corrupt / truncated file: the cache is only an optimisation
            log.warning("text cache %s is unreadable (%s); recomputing", path, e)
    synonyms = vocab.synonyms()
    parts = []
    for i in range(0, len(synonyms), CLASSES_PER_STEP):
        if cancel is not None and cancel.is_set():
            raise EmbeddingCancelled(f"embedding of vocabulary {vocab.name or vocab.digest(templates)} cancelled")
        with lock if lock is not None else contextlib.nullcontext():
            parts.append(embed_synonyms(encoder, synonyms[i:i + CLASSES_PER_STEP], templates))
    k = max(p.shape[1] for p in parts)  # steps pad to their own most synonyms: pad to the vocabulary's
    emb = torch.cat([torch.cat([p, p[:, :1].expand(-1, k - p.shape[1], -1)], 1) if p.shape[1] < k else p
                     for p in parts])
    if cache:
        _atomic_save(emb, path)
    return emb


def _atomic_save(obj: torch.Tensor, path: Path) -> None:
    """Write to a temp file in the same folder, then rename: readers never see a half-written cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except OSError as e:  # read-only cache folder: keep working without the cache
        log.warning("could not write text cache %s: %s", path, e)


__all__ = ["VILD_TEMPLATES", "Vocabulary", "split_synonyms", "load_vocabulary", "embed_synonyms",
           "class_embeddings", "EmbeddingCancelled", "CLASSES_PER_STEP"]
