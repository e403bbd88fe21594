"""Semantic segmentation metrics: per-class IoU, mIoU and pixel accuracy from a streamed confusion matrix.

Label maps are [H, W] integer class indices (0..C-1). Ground-truth pixels equal to `ignore` (65535, the mono16
"unlabelled" value of docs/evaluation.md) are left out. Predicted pixels outside 0..C-1 (e.g. 65535 where no
mask covers the pixel) are counted in an extra "unlabelled" column: they are misses of the ground-truth class,
never hits, so a prediction cannot score by abstaining.
mIoU averages over the classes present in the ground truth or the prediction (union > 0), like detectron2's
SemSegEvaluator over the classes with a defined IoU.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from omg_seg_core.structures import SEMANTIC_IGNORE


class SemanticEvaluator:
    """Streaming confusion matrix [C+1, C+1] (rows = ground truth, cols = prediction; index C = unlabelled)."""

    def __init__(self, class_names: Sequence[str], ignore: int = SEMANTIC_IGNORE) -> None:
        self.class_names = list(class_names)
        self.ignore = int(ignore)
        self.reset()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def reset(self) -> None:
        self.conf = np.zeros((self.num_classes + 1, self.num_classes + 1), np.int64)
        self.num_images = 0

    def process(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Add one image (pred, gt: int [H, W]); returns this image's mIoU (nan when nothing is labelled)."""
        pred = np.asarray(pred).astype(np.int64)
        gt = np.asarray(gt).astype(np.int64)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
        c = self.num_classes
        valid = gt != self.ignore
        bad = np.unique(gt[valid & ((gt < 0) | (gt >= c))])
        if bad.size:
            raise ValueError(f"ground truth holds class id(s) {bad.tolist()[:10]} outside 0..{c - 1} "
                             f"(and not the ignore value {self.ignore})")
        p = np.where((pred >= 0) & (pred < c), pred, c)[valid]
        conf = np.bincount(gt[valid] * (c + 1) + p, minlength=(c + 1) ** 2).reshape(c + 1, c + 1)
        self.conf += conf
        self.num_images += 1
        iou = _iou(conf, c)
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def evaluate(self) -> dict:
        """{"miou", "pixel_accuracy", "per_class": {name: iou}, "num_images", "num_classes_seen"}."""
        c = self.num_classes
        iou = _iou(self.conf, c)
        seen = np.isfinite(iou)
        labelled = self.conf[:c].sum()
        return {
            "miou": float(iou[seen].mean()) if seen.any() else float("nan"),
            "pixel_accuracy": float(np.trace(self.conf[:c, :c]) / labelled) if labelled else float("nan"),
            "per_class": {self.class_names[i]: float(iou[i]) for i in np.flatnonzero(seen)},
            "num_images": self.num_images,
            "num_classes_seen": int(seen.sum()),
        }

    def merge(self, other: "SemanticEvaluator") -> None:
        """Add another evaluator's images (same class list): the confusion matrices add (exact integers)."""
        if other.class_names != self.class_names:
            raise ValueError("SemanticEvaluator.merge: the class lists differ")
        self.conf = self.conf + other.conf
        self.num_images += other.num_images

    def state_dict(self) -> dict:
        return {"conf": self.conf.copy(), "num_images": self.num_images}

    def load_state_dict(self, state: dict) -> None:
        conf = np.asarray(state["conf"], np.int64)
        if conf.shape != self.conf.shape:
            raise ValueError(f"state confusion matrix {conf.shape} != {self.conf.shape}")
        self.conf = conf.copy()
        self.num_images = int(state["num_images"])


def _iou(conf: np.ndarray, c: int) -> np.ndarray:
    """Per-class IoU [C] from a [C+1, C+1] confusion matrix; nan where the class never occurs."""
    tp = np.diag(conf)[:c].astype(np.float64)
    gt_total = conf[:c].sum(1)            # includes pixels predicted unlabelled (misses)
    pred_total = conf[:, :c].sum(0)
    union = gt_total + pred_total - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


__all__ = ["SemanticEvaluator"]
