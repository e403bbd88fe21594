"""Small hand-built frames for tracker tests: rectangles with a class and an embedding per object."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from omg_seg_core.structures import Segments

NAMES = {0: "box", 1: "ball", 2: "cup", 7: "floor", 9: "wall"}


def frame(objs: Sequence[tuple], size: tuple[int, int] = (120, 160), with_emb: bool = True,
          scores: Optional[Sequence[float]] = None) -> Segments:
    """objs: (class_id, x, y, w, h, embedding [D]) per segment; class >= 7 is stuff (full-width band)."""
    h, w = size
    n = len(objs)
    masks = np.zeros((n, h, w), bool)
    embs = []
    for i, (c, x, y, bw, bh, e) in enumerate(objs):
        masks[i, max(y, 0):max(y + bh, 0), max(x, 0):max(x + bw, 0)] = True
        embs.append(e)
    cls = [o[0] for o in objs]
    emb = np.asarray(embs, np.float32).reshape(n, -1) if with_emb and n else None
    if with_emb and n == 0:
        emb = np.zeros((0, 16), np.float32)
    return Segments(masks, np.ones(n) if scores is None else scores, cls, [NAMES[c] for c in cls],
                    [c < 7 for c in cls], embeddings=emb)


def embeddings(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """n random unit vectors (nearly orthogonal for dim >= 16)."""
    e = np.random.default_rng(seed).normal(size=(n, dim))
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
