"""Where training samples come from, and how batches are drawn from them deterministically.

- `SynthSource`: scenes rendered on the fly by the project's generator (`omg_seg_core.data.synth`), frame i of
  (split, seed) — unlimited data; frame pairs come from animated sequences (video co-training).
- `CocoPanopticSource`: a COCO-panoptic dataset on disk (ours from `omg_seg_core.data.synth.generate`, or the
  user's), read with `omg_seg_core.data.coco_panoptic.CocoPanopticDataset`; frame pairs come from an optional
  second dataset whose images carry `sequence_id` / `frame_index` (video mode).

Bad samples are never skipped silently: unreadable files raise, or with `skip_bad` are counted and reported
(`skipped`, logged with the file and reason); a dataset class the vocabulary does not know is an error naming
the file and the category.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..text.vocabulary import Vocabulary, load_vocabulary, split_synonyms
from .config import DataConfig
from .data import Sample, random_scale_crop

log = logging.getLogger(__name__)


def _stable_hash(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text)) % 100003


def sample_from_coco(d: dict[str, Any], origin: str, class_map: Optional[np.ndarray] = None) -> Sample:
    """A CocoPanopticDataset sample dict -> Sample (class ids remapped by `class_map` when given).

    Instance ids: the track id when present (>= 1, stable within a video), else 1_000_000 + segment id.
    Referring phrases of crowd segments are dropped (a crowd region is no single object)."""
    labels = d["class_ids"].astype(np.int64)
    if class_map is not None:
        labels = class_map[labels]
    track = d["track_ids"].astype(np.int64)
    inst = np.where(track > 0, track, 1_000_000 + d["segment_ids"].astype(np.int64))
    phrases = [p if not c else "" for p, c in zip(d["phrases"], d["iscrowd"])]
    return Sample(d["image"], d["masks"], labels, d["is_thing"].astype(bool), inst, phrases, origin)


def sample_from_synth(frame) -> Sample:
    """A SynthFrame -> Sample. Phrases that do not single out their object (`phrase_unique` False) are dropped:
    a referring loss towards one of two identical objects would be noise."""
    segs = frame.segments
    inst = np.array([s.track_id if s.is_thing else 1000 + s.class_id for s in segs], np.int64)
    phrases = [s.phrase if (s.phrase_unique or not s.is_thing) else "" for s in segs]
    return Sample(frame.rgb, frame.masks(), np.array([s.class_id for s in segs], np.int64),
                  np.array([s.is_thing for s in segs], bool), inst, phrases,
                  f"synth split={frame.split} seed={frame.seed} index={frame.index} sequence={frame.sequence}")


class SynthSource:
    """Generated scenes (no files). `sample(i)` = frame i; `pair(i)` = two frames of animated sequence i."""

    kind = "synth"

    def __init__(self, cfg: DataConfig) -> None:
        from ..data.synth import world
        from ..data.synth.generator import SynthGenerator

        self.cfg = cfg
        self.gen = SynthGenerator(320, 240, cfg.split, cfg.seed)
        self.vocabulary = load_vocabulary(cfg.vocabulary or world.vocabulary_path())
        self.skipped = 0
        self._val_gen = None

    def sample(self, i: int) -> Sample:
        return sample_from_synth(self.gen.frame(i))

    def pair(self, i: int, rng: np.random.Generator) -> tuple[Sample, Sample]:
        from ..data.synth.scene import sample_scene
        from ..data.synth.video import animate

        srng = self.gen.rng(1, i)
        base = sample_scene(srng, self.gen.params)
        gap = int(rng.integers(1, 6))
        scenes = animate(base, srng, 8)
        t0 = int(rng.integers(0, len(scenes) - gap))
        fa = self.gen.render(scenes[t0], srng, t0, sequence=i)
        fb = self.gen.render(scenes[t0 + gap], srng, t0 + gap, sequence=i)
        return sample_from_synth(fa), sample_from_synth(fb)

    def val_samples(self, n: int) -> list[Sample]:
        from ..data.synth.generator import SynthGenerator

        if self._val_gen is None:
            self._val_gen = SynthGenerator(320, 240, "val", self.cfg.val_seed, renderer=self.gen.renderer)
        return [sample_from_synth(self._val_gen.frame(i)) for i in range(n)]

    @property
    def has_pairs(self) -> bool:
        return True


class CocoPanopticSource:
    """COCO-panoptic folders: `cfg.root` (single frames) and optional `cfg.video_root` (sequences)."""

    kind = "coco_panoptic"

    def __init__(self, cfg: DataConfig) -> None:
        from ..data.coco_panoptic import CocoPanopticDataset

        if not cfg.root:
            raise ValueError("data.root: a COCO-panoptic dataset folder (with annotations.json) is required "
                             "for data.source=coco_panoptic")
        self.cfg = cfg
        self.ds = CocoPanopticDataset(self._ann(cfg.root, "data.root"), skip_bad=cfg.skip_bad)
        self.video = (CocoPanopticDataset(self._ann(cfg.video_root, "data.video_root"), skip_bad=cfg.skip_bad)
                      if cfg.video_root else None)
        self.val = (CocoPanopticDataset(self._ann(cfg.val_root, "data.val_root"), skip_bad=cfg.skip_bad)
                    if cfg.val_root else None)
        if cfg.vocabulary:
            self.vocabulary = load_vocabulary(cfg.vocabulary)
        else:
            things = [c["name"] for c in self.ds.categories if c["isthing"]]
            stuff = [c["name"] for c in self.ds.categories if not c["isthing"]]
            self.vocabulary = Vocabulary(tuple(things), tuple(stuff), name=Path(cfg.root).name)
        self.maps = {id(d): self._class_map(d) for d in (self.ds, self.video, self.val) if d is not None}
        self.sequences: list[list[int]] = []
        if self.video is not None:
            seqs: dict[Any, list[tuple[int, int]]] = {}
            for k, (im, _) in enumerate(self.video.records):
                if im.get("sequence_id") is None:
                    raise ValueError(f"{self.video.ann_file}: images[{k}] ({im.get('file_name')}) has no "
                                     "'sequence_id' (data.video_root must be a video-mode dataset)")
                seqs.setdefault(im["sequence_id"], []).append((int(im.get("frame_index", 0)), k))
            self.sequences = [[k for _, k in sorted(v)] for v in seqs.values() if len(v) >= 2]

    @staticmethod
    def _ann(root: str, field: str) -> Path:
        p = Path(root)
        ann = p if p.is_file() else p / "annotations.json"
        if not ann.is_file():
            raise FileNotFoundError(f"{field}: no annotations file at {ann}")
        return ann

    def _class_map(self, ds) -> np.ndarray:
        """Dataset class index -> vocabulary class id, by (first-synonym) name; unknown names are errors."""
        index = {}
        for cid, name in enumerate(self.vocabulary.names):
            for syn in split_synonyms(name):
                index.setdefault(syn, cid)
        out = np.zeros(len(ds.categories), np.int64)
        for i, c in enumerate(ds.categories):
            syn = split_synonyms(str(c["name"]))[0]
            if syn not in index:
                raise ValueError(f"{ds.ann_file}: categories entry id={c['id']} name={c['name']!r} is not in the "
                                 f"vocabulary {self.vocabulary.name or ''} ({list(self.vocabulary.display_names)})")
            cid = index[syn]
            if self.vocabulary.is_thing(cid) != bool(c["isthing"]):
                raise ValueError(f"{ds.ann_file}: category {c['name']!r} isthing={c['isthing']} but the vocabulary "
                                 f"lists it as {'thing' if self.vocabulary.is_thing(cid) else 'stuff'}")
            out[i] = cid
        return out

    @property
    def skipped(self) -> int:
        return sum(len(d.skipped) for d in (self.ds, self.video, self.val) if d is not None)

    def _get(self, ds, i: int) -> Sample:
        d = ds[i % len(ds)]
        return sample_from_coco(d, f"{ds.ann_file}:{d['file_name']}", self.maps[id(ds)])

    def sample(self, i: int) -> Sample:
        return self._get(self.ds, i)

    @property
    def has_pairs(self) -> bool:
        return bool(self.sequences)

    def pair(self, i: int, rng: np.random.Generator) -> tuple[Sample, Sample]:
        seq = self.sequences[i % len(self.sequences)]
        gap = int(rng.integers(1, min(5, len(seq) - 1) + 1))
        t0 = int(rng.integers(0, len(seq) - gap))
        return self._get(self.video, seq[t0]), self._get(self.video, seq[t0 + gap])

    def val_samples(self, n: int) -> list[Sample]:
        ds = self.val if self.val is not None else self.ds
        # without a validation set, the LAST images of the training set serve (reported as such in the log)
        start = 0 if self.val is not None else max(len(ds) - n, 0)
        return [self._get(ds, start + k) for k in range(min(n, len(ds)))]


def make_source(cfg: DataConfig):
    if cfg.source == "synth":
        return SynthSource(cfg)
    if cfg.source == "coco_panoptic":
        return CocoPanopticSource(cfg)
    raise ValueError(f"data.source: unknown source '{cfg.source}' (known: synth, coco_panoptic)")


class BatchSampler:
    """Deterministic batches: iteration `it` uses images it*B..it*B+B-1 (modulo the source) and pairs likewise,
    with crops drawn from a generator seeded by (seed, it), so a resumed run sees exactly the same data."""

    def __init__(self, source, cfg: DataConfig, batch_size: int, seed: int = 0) -> None:
        self.source, self.cfg, self.batch_size, self.seed = source, cfg, batch_size, seed
        n_pairs = int(round(batch_size * cfg.video_fraction / 2)) if source.has_pairs else 0
        if cfg.video_fraction > 0 and not source.has_pairs:
            log.warning("data: no video sequences available; training without frame pairs")
        self.n_pairs = n_pairs
        self.n_single = batch_size - 2 * n_pairs
        self._val: Optional[list[list[Sample]]] = None

    def rng_for(self, it: int, purpose: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, it, _stable_hash(purpose)])

    @property
    def skipped(self) -> int:
        return int(self.source.skipped)

    def batch(self, it: int) -> tuple[list[Sample], list[tuple[int, int]]]:
        rng = self.rng_for(it, "crop")
        out: list[Sample] = []
        pairs: list[tuple[int, int]] = []
        size, scale = tuple(self.cfg.image_size), self.cfg.scale_range
        for j in range(self.n_single):
            out.append(random_scale_crop(self.source.sample(it * self.n_single + j), size, scale, rng))
        for j in range(self.n_pairs):
            a, b = self.source.pair(it * self.n_pairs + j, self.rng_for(it * 1000 + j, "pair"))
            # both frames get the same crop window so motion, not the crop, moves the objects
            st = rng.bit_generator.state
            out.append(random_scale_crop(a, size, scale, rng))
            rng.bit_generator.state = st
            out.append(random_scale_crop(b, size, scale, rng))
            pairs.append((len(out) - 2, len(out) - 1))
        return out, pairs

    def val_batches(self) -> list[list[Sample]]:
        """Fixed validation batches (crops at the geometric mean of scale_range: 1 by default), computed once."""
        if self._val is None:
            rng = np.random.default_rng(0)
            f = math.sqrt(self.cfg.scale_range[0] * self.cfg.scale_range[1])  # 1.0 for the default (0.8, 1.25)
            samples = [random_scale_crop(s, tuple(self.cfg.image_size), (f, f), rng)
                       for s in self.source.val_samples(self.cfg.val_images)]
            self._val = [samples[i:i + self.batch_size] for i in range(0, len(samples), self.batch_size)]
        return self._val

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        if st.get("seed") != self.seed:
            raise ValueError(f"training state: field 'rng.sampler.seed' {st.get('seed')} != this run's seed {self.seed}")


__all__ = ["SynthSource", "CocoPanopticSource", "BatchSampler", "make_source", "sample_from_coco",
           "sample_from_synth"]
