"""Mapping ground-truth class ids onto the evaluation class list (the model vocabulary) by name.

Ground truth from a bag names its classes in a vision_msgs/LabelInfo (id -> name) or per segment; a COCO-panoptic
folder names them in its categories. A GT name matches a vocabulary class when it equals any of the class's
synonyms (case-insensitive). GT classes the vocabulary does not know are appended to the evaluation list as
stuff (the model cannot predict them, so they count as misses; appending keeps them visible in per-class
results instead of silently turning them into void).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from omg_seg_core.structures import SEMANTIC_IGNORE


def _split(name: str) -> list[str]:
    for sep in (",", "/", "_or_"):
        if sep in name:
            return [s.strip().lower() for s in name.split(sep) if s.strip()]
    return [name.strip().lower()]


class ClassMap:
    """Evaluation classes (`names`, `is_thing`) = vocabulary classes + unknown GT classes (appended as stuff)."""

    def __init__(self, vocab_names: Sequence[str], num_things: int) -> None:
        self.synonyms = [_split(n) for n in vocab_names]
        self.names = [s[0] for s in self.synonyms]
        self.is_thing = [i < num_things for i in range(len(self.names))]
        self.unknown: list[str] = []
        self.frozen = False  # set once the evaluators exist: their class list cannot grow any more
        self._lookup = {syn: i for i, syns in enumerate(self.synonyms) for syn in syns}

    def index(self, name: str, add: bool = True) -> Optional[int]:
        """Evaluation index of a GT class name; unknown names are appended (add=True) or None."""
        key = _split(name)[0] if name else ""
        if key in self._lookup:
            return self._lookup[key]
        if not add or self.frozen or not key:
            return None
        self._lookup[key] = len(self.names)
        self.names.append(key)
        self.synonyms.append([key])
        self.is_thing.append(False)
        self.unknown.append(key)
        return self._lookup[key]

    def restore(self, names: Sequence[str], is_thing: Sequence[bool]) -> None:
        """Re-apply a saved evaluation class list (resume): vocabulary classes first, then the appended ones."""
        for n in names[len(self.names):]:
            self.index(n)
        if list(names) != self.names or [bool(t) for t in is_thing] != self.is_thing:
            raise ValueError("saved class list does not extend the current vocabulary (vocabulary changed?)")
        self.frozen = True

    def lut(self, gt_names: Optional[Mapping[int, str]]) -> np.ndarray:
        """uint16 [65536] lookup GT id -> evaluation index (void stays void). Without names the GT ids are taken
        to be vocabulary indices already (ids beyond the vocabulary map to void and are reported by the caller)."""
        lut = np.full(65536, SEMANTIC_IGNORE, np.uint16)
        if gt_names is None:
            n = len(self.names)
            lut[:n] = np.arange(n, dtype=np.uint16)
            return lut
        for gid, name in gt_names.items():
            if not 0 <= gid < SEMANTIC_IGNORE:  # the label map's own "unlabeled" entry (65535) stays void
                continue
            idx = self.index(name)
            if idx is not None:
                lut[gid] = idx
        return lut


__all__ = ["ClassMap"]
