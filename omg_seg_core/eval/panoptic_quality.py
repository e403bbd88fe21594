"""Panoptic quality (PQ / SQ / RQ) with the semantics of panopticapi's `pq_compute` (not on PyPI).

A panoptic labelling of one image is a `PanopticFrame`: an integer id map [H, W] (0 = void) plus a dict
segment id -> category id (0-based class index into the evaluator's class list) and the set of crowd ids.

Matching rules (panopticapi, Kirillov et al. 2019):
- a prediction and a ground-truth segment of the SAME category match when IoU > 0.5 (unique by construction,
  because segments of one image do not overlap); the union excludes the part of the prediction that lies on
  ground-truth void: union = |p| + |g| - |p n g| - |p n void|;
- unmatched non-crowd ground-truth segments are false negatives; crowd segments are never counted;
- an unmatched prediction is a false positive unless more than half of it lies on void plus the crowd region of
  its own category;
- per class: SQ = sum IoU / TP, RQ = TP / (TP + FP/2 + FN/2), PQ = SQ * RQ; "all" / "things" / "stuff" average
  over the classes with TP + FP + FN > 0 (as panopticapi and torchmetrics do).

Values are fractions in [0, 1] (panopticapi prints them x100).
`PanopticEvaluator` follows detectron2's reset / process / evaluate interface and can be checkpointed with
`state_dict()` / `load_state_dict()` so long evaluations resume, and merged (`merge`) so evaluations split over
workers add up. The per-class IoU sums are kept exactly (Shewchuk partials, `ExactSum`), so a merged evaluation
equals a single-process one bit for bit whatever the split: float addition alone is not associative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from omg_seg_core.structures import SEMANTIC_IGNORE, Segments


@dataclass
class PanopticFrame:
    """One image's panoptic labelling. ids: int [H, W], 0 = void; categories: segment id -> class index."""

    ids: np.ndarray
    categories: dict[int, int]
    crowd: set[int] = field(default_factory=set)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.ids.shape[0]), int(self.ids.shape[1])


def panoptic_from_segments(segments: Segments) -> PanopticFrame:
    """Segments -> PanopticFrame: segment i gets id i + 1, later masks overwrite earlier ones (same order rule as
    `Segments.semantic_map`), segments without a class (class_id < 0) are left out."""
    ids = np.zeros(segments.image_size, np.int32)
    cats: dict[int, int] = {}
    for i, (m, c) in enumerate(zip(segments.masks, segments.class_ids)):
        if c < 0:
            continue
        ids[m] = i + 1
        cats[i + 1] = int(c)
    return PanopticFrame(ids, cats)


def panoptic_from_labels(semantic: np.ndarray, instance_ids: Optional[np.ndarray], thing_classes: Iterable[int],
                         ignore: int = SEMANTIC_IGNORE) -> PanopticFrame:
    """Ground-truth label images -> PanopticFrame (the bag convention of docs/evaluation.md).

    semantic: uint16 [H, W] class index, `ignore` (65535) = void. instance_ids: uint16 [H, W], 0 = none, or None.
    A stuff class is one segment per image. A thing pixel with instance id k > 0 belongs to segment (class, k);
    thing pixels with instance id 0 form one CROWD segment per class (COCO's iscrowd: neither counted as a
    false negative nor allowed to make a prediction a false positive).
    """
    semantic = np.asarray(semantic)
    things = set(int(t) for t in thing_classes)
    inst = np.zeros(semantic.shape, np.int64) if instance_ids is None else np.asarray(instance_ids).astype(np.int64)
    if inst.shape != semantic.shape:
        raise ValueError(f"instance id image {inst.shape} and semantic image {semantic.shape} differ in size")
    sem = semantic.astype(np.int64)
    valid = sem != ignore
    is_thing_px = np.isin(sem, np.fromiter(things, np.int64, len(things))) & valid
    # Stuff pixels ignore the instance channel: one segment per stuff class.
    inst = np.where(is_thing_px, inst, 0)
    key = np.where(valid, sem * 65536 + inst, -1)
    uniq, inv = np.unique(key, return_inverse=True)
    lookup = np.zeros(len(uniq), np.int32)   # unique key index -> segment id (0 = void)
    cats: dict[int, int] = {}
    crowd: set[int] = set()
    next_id = 1
    for u_index, u in enumerate(uniq):
        if u < 0:
            continue
        cls, k = divmod(int(u), 65536)
        cats[next_id] = cls
        if cls in things and k == 0:
            crowd.add(next_id)
        lookup[u_index] = next_id
        next_id += 1
    return PanopticFrame(lookup[inv.reshape(sem.shape)], cats, crowd)


class ExactSum:
    """A float sum kept exactly as non-overlapping partials (Shewchuk; Python's `math.fsum` recipe): `value` is
    the correctly rounded sum of everything added, independent of the order of additions and of merges."""

    __slots__ = ("partials",)

    def __init__(self, partials: Iterable[float] = ()) -> None:
        self.partials: list[float] = []
        for x in partials:
            self.add(x)

    def add(self, x: float) -> None:
        x, i = float(x), 0
        for y in self.partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                self.partials[i] = lo
                i += 1
            x = hi
        self.partials[i:] = [x]

    def merge(self, other: "ExactSum") -> None:
        for x in other.partials:
            self.add(x)

    @property
    def value(self) -> float:
        return math.fsum(self.partials)


@dataclass
class FrameStats:
    """Per-image result of `PanopticEvaluator.process`: counts and this image's own PQ (nan when empty)."""

    tp: int
    fp: int
    fn: int
    pq: float
    matched_ious: list[float]


class PanopticEvaluator:
    """Streaming PQ over images; classes are 0-based indices into `class_names`; `is_thing[c]` marks things."""

    def __init__(self, class_names: Sequence[str], is_thing: Sequence[bool]) -> None:
        if len(class_names) != len(is_thing):
            raise ValueError(f"{len(class_names)} class names but {len(is_thing)} thing flags")
        self.class_names = list(class_names)
        self.is_thing = np.asarray(is_thing, bool)
        self.reset()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def reset(self) -> None:
        c = self.num_classes
        self.iou_sums = [ExactSum() for _ in range(c)]
        self.tp = np.zeros(c, np.int64)
        self.fp = np.zeros(c, np.int64)
        self.fn = np.zeros(c, np.int64)
        self.num_images = 0

    @property
    def iou_sum(self) -> np.ndarray:
        """float64 [C]: sum of matched IoUs per class (correctly rounded, see `ExactSum`)."""
        return np.array([s.value for s in self.iou_sums], np.float64)

    def _check(self, frame: PanopticFrame, what: str) -> None:
        bad = [c for c in frame.categories.values() if not 0 <= c < self.num_classes]
        if bad:
            raise ValueError(f"{what}: category id(s) {sorted(set(bad))} outside 0..{self.num_classes - 1}")

    def process(self, pred: PanopticFrame, gt: PanopticFrame) -> FrameStats:
        """Add one image. Both id maps must have the same [H, W]. Returns this image's counts and PQ."""
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
        self._check(pred, "prediction")
        self._check(gt, "ground truth")
        g_lab, g_inv = np.unique(gt.ids, return_inverse=True)
        p_lab, p_inv = np.unique(pred.ids, return_inverse=True)
        # Pairwise intersection table in one bincount: rows = ground-truth labels, cols = predicted labels.
        inter = np.bincount(g_inv.reshape(-1) * len(p_lab) + p_inv.reshape(-1),
                            minlength=len(g_lab) * len(p_lab)).reshape(len(g_lab), len(p_lab))
        g_area, p_area = inter.sum(1), inter.sum(0)
        g_cat = np.array([gt.categories.get(int(g), -1) for g in g_lab], np.int64)   # -1 = void
        p_cat = np.array([pred.categories.get(int(p), -1) for p in p_lab], np.int64)
        g_crowd = np.array([int(g) in gt.crowd for g in g_lab], bool)
        void_rows = np.flatnonzero(g_cat < 0)
        p_on_void = inter[void_rows].sum(0) if void_rows.size else np.zeros(len(p_lab), np.int64)

        tp = np.zeros(self.num_classes, np.int64)
        fp = np.zeros_like(tp)
        fn = np.zeros_like(tp)
        iou_sum = np.zeros(self.num_classes, np.float64)
        g_matched = np.zeros(len(g_lab), bool)
        p_matched = np.zeros(len(p_lab), bool)
        ious: list[float] = []
        for gi, pi in zip(*np.nonzero(inter)):
            if g_cat[gi] < 0 or p_cat[pi] < 0 or g_crowd[gi] or g_cat[gi] != p_cat[pi]:
                continue
            union = p_area[pi] + g_area[gi] - inter[gi, pi] - p_on_void[pi]
            iou = inter[gi, pi] / union
            if iou > 0.5:
                tp[g_cat[gi]] += 1
                iou_sum[g_cat[gi]] += iou
                self.iou_sums[g_cat[gi]].add(iou)
                g_matched[gi] = p_matched[pi] = True
                ious.append(float(iou))
        crowd_of_class: dict[int, int] = {}
        for gi in range(len(g_lab)):
            if g_cat[gi] < 0 or g_matched[gi]:
                continue
            if g_crowd[gi]:
                crowd_of_class[int(g_cat[gi])] = gi
                continue
            fn[g_cat[gi]] += 1
        for pi in range(len(p_lab)):
            if p_cat[pi] < 0 or p_matched[pi]:
                continue
            ignored = p_on_void[pi]
            if int(p_cat[pi]) in crowd_of_class:
                ignored += inter[crowd_of_class[int(p_cat[pi])], pi]
            if ignored / p_area[pi] > 0.5:
                continue
            fp[p_cat[pi]] += 1
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.num_images += 1
        frame_pq = _average(*_per_class(iou_sum, tp, fp, fn), np.ones(self.num_classes, bool))["pq"]
        return FrameStats(int(tp.sum()), int(fp.sum()), int(fn.sum()), frame_pq, ious)

    def evaluate(self) -> dict:
        """{"all"|"things"|"stuff": {pq, sq, rq, n}, "per_class": {name: {pq, sq, rq, tp, fp, fn, is_thing}},
        "num_images"}; averages over classes seen (TP + FP + FN > 0), nan when no class was seen."""
        pq, sq, rq, seen = _per_class(self.iou_sum, self.tp, self.fp, self.fn)
        out = {
            "all": _average(pq, sq, rq, seen, np.ones(self.num_classes, bool)),
            "things": _average(pq, sq, rq, seen, self.is_thing),
            "stuff": _average(pq, sq, rq, seen, ~self.is_thing),
            "per_class": {},
            "num_images": self.num_images,
        }
        for c, name in enumerate(self.class_names):
            if seen[c]:
                out["per_class"][name] = {"pq": float(pq[c]), "sq": float(sq[c]), "rq": float(rq[c]),
                                          "tp": int(self.tp[c]), "fp": int(self.fp[c]), "fn": int(self.fn[c]),
                                          "is_thing": bool(self.is_thing[c])}
        return out

    def merge(self, other: "PanopticEvaluator") -> None:
        """Add another evaluator's images (same class list): counts add, IoU sums add exactly."""
        if other.class_names != self.class_names:
            raise ValueError("PanopticEvaluator.merge: the class lists differ")
        for mine, theirs in zip(self.iou_sums, other.iou_sums):
            mine.merge(theirs)
        for k in ("tp", "fp", "fn"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.num_images += other.num_images

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a resume state pickled before the exact sums existed holds a rounded `iou_sum` array."""
        if "iou_sums" not in state:
            state["iou_sums"] = [ExactSum([float(x)]) for x in state.pop("iou_sum")]
        self.__dict__.update(state)

    def state_dict(self) -> dict:
        return {"iou_sum": self.iou_sum, "iou_partials": [list(s.partials) for s in self.iou_sums],
                "tp": self.tp.copy(), "fp": self.fp.copy(), "fn": self.fn.copy(), "num_images": self.num_images}

    def load_state_dict(self, state: dict) -> None:
        if len(state["tp"]) != self.num_classes:
            raise ValueError(f"state has {len(state['tp'])} classes, evaluator {self.num_classes}")
        # States written before the exact sums existed hold only the rounded per-class sums.
        partials = state.get("iou_partials") or [[float(x)] for x in state["iou_sum"]]
        self.iou_sums = [ExactSum(p) for p in partials]
        for k in ("tp", "fp", "fn"):
            setattr(self, k, np.asarray(state[k], np.int64).copy())
        self.num_images = int(state["num_images"])


def _per_class(iou_sum: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray):
    """-> pq, sq, rq [C] and seen [C] (classes with TP + FP + FN > 0)."""
    denom = tp + 0.5 * fp + 0.5 * fn
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1), 0.0)
        rq = np.where(denom > 0, tp / np.where(denom > 0, denom, 1), 0.0)
    return sq * rq, sq, rq, denom > 0


def _average(pq: np.ndarray, sq: np.ndarray, rq: np.ndarray, seen: np.ndarray, select: np.ndarray,
             ) -> dict:
    sel = seen & select
    n = int(sel.sum())
    if n == 0:
        return {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n": 0}
    return {"pq": float(pq[sel].mean()), "sq": float(sq[sel].mean()), "rq": float(rq[sel].mean()), "n": n}


__all__ = ["PanopticFrame", "PanopticEvaluator", "FrameStats", "ExactSum", "panoptic_from_segments", "panoptic_from_labels"]
