"""3D answers against ground truth: centroid error, 3D box IoU and the fraction of objects with a valid answer.

Per frame, predicted things are matched one-to-one to ground-truth things by mask IoU (Hungarian, IoU >= 0.5, as
PQ matches). For each matched object with a ground-truth 3D box (centre, size; camera optical frame, metres):
- centroid error = |position - gt centre| (metres; reported in cm), and the same for the visible-surface median
  (`Boxes3D.surface`) so the box completion's effect is visible;
- 3D IoU of the axis-aligned boxes (an oriented box is compared through its axis-aligned hull);
- valid = the answer has QUALITY_OK.
`valid_fraction` = valid answers / matched objects; `answered_fraction` = valid answers / all ground-truth
objects in range (segmentation misses count against it). Only ground truth whose centre depth lies in
[min_z, max_z] is scored. The state is lists of per-object numbers, so evaluations merge by concatenation.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..structures import Segments, mask_iou_matrix


def box_iou_3d(c1: np.ndarray, s1: np.ndarray, c2: np.ndarray, s2: np.ndarray) -> float:
    """IoU of two axis-aligned 3D boxes given by centres and sizes [3]."""
    lo = np.maximum(c1 - s1 / 2, c2 - s2 / 2)
    hi = np.minimum(c1 + s1 / 2, c2 + s2 / 2)
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(s1) + np.prod(s2)) - inter
    return inter / union if union > 0 else 0.0


def _aabb_size(size: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Size of the camera-aligned hull of a box with axes `rot` (columns) and extents `size`."""
    return np.abs(rot) @ size


class Depth3DEvaluator:
    """reset / process / evaluate (eval.Evaluator protocol); see the module docstring."""

    def __init__(self, min_z: float = 0.4, max_z: float = 1.5, iou_threshold: float = 0.5) -> None:
        self.min_z, self.max_z, self.iou_threshold = float(min_z), float(max_z), float(iou_threshold)
        self.reset()

    def reset(self) -> None:
        self.errors: list[float] = []          # metres, matched objects with a valid answer
        self.surface_errors: list[float] = []
        self.ious: list[float] = []
        self.matched = 0
        self.valid = 0
        self.gt_total = 0

    def process(self, pred: Segments, gt_masks: np.ndarray, gt_centres: np.ndarray, gt_sizes: np.ndarray) -> None:
        """pred: the frame's segments with `boxes_3d` (things are scored); gt_masks bool [G, H, W], gt_centres and
        gt_sizes float [G, 3] of the ground-truth things."""
        gt_centres = np.asarray(gt_centres, np.float64).reshape(-1, 3)
        gt_sizes = np.asarray(gt_sizes, np.float64).reshape(-1, 3)
        keep = (gt_centres[:, 2] >= self.min_z) & (gt_centres[:, 2] <= self.max_z)
        gt_masks, gt_centres, gt_sizes = gt_masks[keep], gt_centres[keep], gt_sizes[keep]
        self.gt_total += len(gt_masks)
        things = np.flatnonzero(pred.is_thing)
        if not len(gt_masks) or not len(things) or pred.boxes_3d is None:
            return
        iou = mask_iou_matrix(pred.masks[things], gt_masks)
        rows, cols = linear_sum_assignment(-iou)
        b = pred.boxes_3d
        for r, c in zip(rows, cols):
            if iou[r, c] < self.iou_threshold:
                continue
            self.matched += 1
            i = things[r]
            if not b.valid[i]:
                continue
            self.valid += 1
            self.errors.append(float(np.linalg.norm(b.position[i] - gt_centres[c])))
            self.surface_errors.append(float(np.linalg.norm(b.surface[i] - gt_centres[c])))
            self.ious.append(box_iou_3d(b.position[i].astype(np.float64),
                                        _aabb_size(b.size[i].astype(np.float64), b.rotation[i].astype(np.float64)),
                                        gt_centres[c], gt_sizes[c]))

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("errors", "surface_errors", "ious", "matched", "valid", "gt_total")}

    def load_state_dict(self, s: dict) -> None:
        for k, v in s.items():
            setattr(self, k, list(v) if isinstance(v, list) else v)

    def merge(self, other: "Depth3DEvaluator") -> None:
        for k in ("errors", "surface_errors", "ious"):
            getattr(self, k).extend(getattr(other, k))
        self.matched += other.matched
        self.valid += other.valid
        self.gt_total += other.gt_total

    def evaluate(self) -> dict[str, Any]:
        def pct(xs: list[float], q: float) -> Optional[float]:
            return float(np.percentile(xs, q)) * 100.0 if xs else None

        return {
            "objects": self.gt_total, "matched": self.matched, "valid": self.valid,
            "centroid_error_cm_median": pct(self.errors, 50), "centroid_error_cm_p90": pct(self.errors, 90),
            "surface_error_cm_median": pct(self.surface_errors, 50),
            "iou_3d_mean": float(np.mean(self.ious)) if self.ious else None,
            "valid_fraction": self.valid / self.matched if self.matched else None,
            "answered_fraction": self.valid / self.gt_total if self.gt_total else None,
            "range_m": [self.min_z, self.max_z],
        }


def format_depth_report(name: str, m: dict[str, Any]) -> str:
    """One line of a 3D report."""
    if not m.get("valid"):
        return f"3D {name}: no valid answer ({m.get('objects', 0)} objects)"
    return (f"3D {name}: centroid error median {m['centroid_error_cm_median']:.2f} cm, p90 "
            f"{m['centroid_error_cm_p90']:.2f} cm (visible-surface median {m['surface_error_cm_median']:.2f} cm), "
            f"3D IoU {m['iou_3d_mean']:.3f}, valid {m['valid_fraction']:.3f} of {m['matched']} matched, answered "
            f"{m['answered_fraction']:.3f} of {m['objects']} objects at {m['range_m'][0]}-{m['range_m'][1]} m")


__all__ = ["Depth3DEvaluator", "box_iou_3d", "format_depth_report"]
