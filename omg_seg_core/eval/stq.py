"""Segmentation and Tracking Quality (STQ, Weber et al., "STEP: Segmenting and Tracking Every Pixel", NeurIPS
2021 datasets track; reference implementation deeplab2 `evaluation/segmentation_and_tracking_quality.py`, not on
PyPI). STQ = sqrt(AQ x SQ):

- AQ (association quality, pixel-level, class-agnostic, things only): for every ground-truth track g of a sequence
  (all its pixels over all frames), sum over predicted tracks p that overlap it of TPA(p, g) x IoU_id(p, g), divided
  by |g|; IoU_id = TPA / (TPA + FPA + FNA) = |p n g| / (|p| + |g| - |p n g|) with sizes summed over the sequence.
  AQ = (sum over sequences and GT tracks) / (number of GT tracks). A track is (class, id), as in deeplab2's
  panoptic ids, so a class flip mid-track splits it.
- SQ (segmentation quality) = semantic mIoU over all frames, as `semantic.SemanticEvaluator` (void GT ignored,
  unlabelled prediction pixels are misses).
Predicted thing pixels on ground-truth void or crowd (thing class, instance 0) are ignored for AQ, as deeplab2
ignores them; predicted segments without a track id (0) are not tracker output and count as no prediction.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from omg_seg_core.eval.semantic import SemanticEvaluator
from omg_seg_core.structures import SEMANTIC_IGNORE, Segments


def track_id_map(segments: Segments) -> np.ndarray:
    """uint32 [H, W] tracker id per pixel (0 = none); segments with track id 0 are left out (later overwrite)."""
    out = np.zeros(segments.image_size, np.uint32)
    for m, t in zip(segments.masks, segments.track_ids):
        if t > 0:
            out[m] = t
    return out


class STQEvaluator:
    """Streaming STQ. `start_sequence()`, then `process(gt_sem, gt_inst, pred_sem, pred_inst)` per frame."""

    def __init__(self, class_names: Sequence[str], is_thing: Sequence[bool]) -> None:
        self.is_thing = np.asarray(is_thing, bool)
        self.semantic = SemanticEvaluator(class_names)
        self.sequences: list[dict[str, Counter]] = []

    def reset(self) -> None:
        """Forget every sequence."""
        self.semantic.reset()
        self.sequences = []

    def start_sequence(self) -> None:
        self.sequences.append({"gt": Counter(), "pred": Counter(), "inter": Counter()})

    def merge(self, other: "STQEvaluator") -> None:
        """Append another evaluator's sequences after ours (AQ sums per sequence in order; SQ's confusion matrix
        adds), equal to one evaluator fed both in that order. Sequences must be whole (AQ is per track)."""
        self.semantic.merge(other.semantic)
        self.sequences += other.sequences

    def _thing(self, sem: np.ndarray) -> np.ndarray:
        lut = np.zeros(65536, bool)
        lut[: len(self.is_thing)] = self.is_thing
        return lut[sem.astype(np.int64)]

    def process(self, gt_sem: np.ndarray, gt_inst: np.ndarray, pred_sem: np.ndarray, pred_inst: np.ndarray) -> None:
        """gt_sem / pred_sem: class index [H, W] (65535 = void / unlabelled); gt_inst / pred_inst: track id [H, W]
        (0 = none; GT thing pixels with 0 are crowd)."""
        if not self.sequences:
            raise RuntimeError("STQEvaluator: call start_sequence() before process()")
        shapes = {a.shape for a in (gt_sem, gt_inst, pred_sem, pred_inst)}
        if len(shapes) != 1:
            raise ValueError(f"STQ frame maps differ in size: {sorted(shapes)}")
        self.semantic.process(pred_sem, gt_sem)
        gt_sem, pred_sem = gt_sem.astype(np.int64), pred_sem.astype(np.int64)
        gt_inst, pred_inst = gt_inst.astype(np.int64), pred_inst.astype(np.int64)
        gt_thing = self._thing(gt_sem) & (gt_sem != SEMANTIC_IGNORE)
        gt_mask = gt_thing & (gt_inst > 0)
        ignored = (gt_sem == SEMANTIC_IGNORE) | (gt_thing & (gt_inst == 0))
        pred_mask = self._thing(pred_sem) & (pred_sem != SEMANTIC_IGNORE) & (pred_inst > 0) & ~ignored
        # Track keys (class, id) packed in one int64, so a class change starts a new track (deeplab2 panoptic ids).
        g_key = gt_sem * (1 << 32) + gt_inst
        p_key = pred_sem * (1 << 32) + pred_inst
        seq = self.sequences[-1]
        for name, keys in (("gt", g_key[gt_mask]), ("pred", p_key[pred_mask])):
            u, c = np.unique(keys, return_counts=True)
            seq[name].update(dict(zip(u.tolist(), c.tolist())))
        both = gt_mask & pred_mask
        pairs = np.stack([g_key[both], p_key[both]], 1)
        if len(pairs):
            u, c = np.unique(pairs, axis=0, return_counts=True)
            seq["inter"].update({(int(a), int(b)): int(n) for (a, b), n in zip(u, c)})

    def evaluate(self) -> dict:
        """{"stq", "aq", "sq", "gt_tracks"}; nan where undefined (no GT track -> AQ nan)."""
        total, tracks = 0.0, 0
        for seq in self.sequences:
            by_gt: dict[int, float] = {}
            for (g, p), tpa in seq["inter"].items():
                iou = tpa / (seq["pred"][p] + seq["gt"][g] - tpa)
                by_gt[g] = by_gt.get(g, 0.0) + tpa * iou
            total += sum(by_gt.get(g, 0.0) / size for g, size in seq["gt"].items())
            tracks += len(seq["gt"])
        aq = total / tracks if tracks else float("nan")
        sq = self.semantic.evaluate()["miou"]
        stq = float(np.sqrt(aq * sq)) if np.isfinite(aq) and np.isfinite(sq) else float("nan")
        return {"stq": stq, "aq": float(aq), "sq": float(sq), "gt_tracks": tracks}


__all__ = ["STQEvaluator", "track_id_map"]
