"""A simulated detector: ground-truth video segments degraded the way a real segmenter degrades them.

Used to evaluate the TRACKER LOGIC on generated video independently of any model (numbers from it are labelled
"gt-noisy" and must not be read as model results). Per frame:

* query embeddings: ``normalize(a * class_vec[c] + b * object_vec[uid] + noise)``, where each object's vector
  drifts slowly (random walk, as appearance changes with pose/lighting) and noise is fresh per frame. With the
  defaults the cosine of one object across frames is about 0.8 and of two objects of one class about 0.3;
* masks: eroded or dilated by one pixel and shifted by up to one pixel at random (boundary noise);
* misses: every object is dropped with probability `p_drop`, small visible parts (< `small_area` px, e.g. an
  object mostly occluded or at the border) with `p_drop_small`;
* false positives: Poisson(`fp_rate`) blobs per frame, random thing class, random embedding;
* class flips with probability `p_class_flip`; scores uniform in [0.5, 1].
Stuff segments pass through unchanged (stuff ids are class based, nothing to track).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..structures import Segments


@dataclass
class NoiseConfig:
    embed_dim: int = 128
    class_weight: float = 0.6      # a: shared by all objects of a class
    object_weight: float = 0.8     # b: identity
    embed_noise: float = 0.5       # per-frame noise norm (relative to a unit identity+class vector)
    drift: float = 0.05            # per-frame random-walk step of each object's identity vector
    p_drop: float = 0.05
    p_drop_small: float = 0.5
    small_area: int = 150
    fp_rate: float = 0.3
    p_class_flip: float = 0.02
    mask_jitter: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class NoisyDetector:
    """Stateful per sequence (object vectors persist); call `reset()` between sequences."""

    def __init__(self, class_names: list[str], num_things: int, cfg: NoiseConfig | None = None,
                 seed: int = 0) -> None:
        self.cfg = cfg if cfg is not None else NoiseConfig()
        self.class_names = list(class_names)
        self.num_things = int(num_things)
        self.rng = np.random.default_rng(seed)
        self.class_vec = self._unit(self.rng.normal(size=(len(self.class_names), self.cfg.embed_dim)))
        self.reset()

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def reset(self) -> None:
        self.object_vec: dict[int, np.ndarray] = {}

    def _embedding(self, cls: int, uid: int | None) -> np.ndarray:
        c, d = self.cfg, self.cfg.embed_dim
        if uid is None:  # false positive: unrelated identity
            ident = self._unit(self.rng.normal(size=d))
        else:
            if uid not in self.object_vec:
                self.object_vec[uid] = self._unit(self.rng.normal(size=d))
            ident = self.object_vec[uid] = self._unit(self.object_vec[uid] + c.drift * self._unit(
                self.rng.normal(size=d)))
        e = c.class_weight * self.class_vec[cls] + c.object_weight * ident
        e = e + c.embed_noise * self.rng.normal(size=d) / np.sqrt(d)
        return self._unit(e).astype(np.float32)

    def _jitter(self, m: np.ndarray) -> np.ndarray:
        r = self.rng.random()
        if r < 0.25:
            m = ndimage.binary_erosion(m)
        elif r < 0.5:
            m = ndimage.binary_dilation(m)
        dy, dx = self.rng.integers(-1, 2, size=2)
        return np.roll(m, (int(dy), int(dx)), axis=(0, 1))

    def __call__(self, gt: Segments) -> Segments:
        """gt: ground-truth Segments of one frame (track_ids = object uids). Returns simulated detections."""
        c = self.cfg
        h, w = gt.image_size
        masks, cls, thing, emb = [], [], [], []
        for i in range(len(gt)):
            m = gt.masks[i]
            if not gt.is_thing[i]:
                masks.append(m)
                cls.append(int(gt.class_ids[i]))
                thing.append(False)
                emb.append(self._embedding(int(gt.class_ids[i]), -1 - int(gt.class_ids[i])))
                continue
            area = int(m.sum())
            uid = int(gt.track_ids[i])
            e = self._embedding(int(gt.class_ids[i]), uid)  # drift advances even when the detector misses
            if self.rng.random() < (c.p_drop_small if area < c.small_area else c.p_drop):
                continue
            if c.mask_jitter:
                m = self._jitter(m)
                if not m.any():
                    continue
            k = int(gt.class_ids[i])
            if self.rng.random() < c.p_class_flip:
                k = int(self.rng.integers(0, self.num_things))
            masks.append(m)
            cls.append(k)
            thing.append(True)
            emb.append(e)
        for _ in range(self.rng.poisson(c.fp_rate)):
            yy, xx = np.ogrid[0:h, 0:w]
            cy, cx = self.rng.uniform(0, h), self.rng.uniform(0, w)
            ry, rx = self.rng.uniform(0.03, 0.08, size=2) * min(h, w)
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            k = int(self.rng.integers(0, self.num_things))
            masks.append(m)
            cls.append(k)
            thing.append(True)
            emb.append(self._embedding(k, None))
        n = len(masks)
        if n == 0:
            return Segments.empty((h, w), task="panoptic", embed_dim=c.embed_dim)
        return Segments(np.stack(masks), self.rng.uniform(0.5, 1.0, n), cls, [self.class_names[k] for k in cls], thing,
                        embeddings=np.stack(emb), task="panoptic")


__all__ = ["NoiseConfig", "NoisyDetector"]
