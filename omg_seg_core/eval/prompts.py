"""Prompt mIoU: for each recorded prompt (point or box), the IoU between the predicted mask and the mask of the
ground-truth segment the prompt refers to; mIoU is the mean over prompts (SAM's interactive-segmentation
metric). A prompt whose prediction is empty scores IoU 0 (it counts, it is not skipped)."""
from __future__ import annotations

import numpy as np

from ..structures import mask_iou


class PromptEvaluator:
    """Streaming mean IoU over prompts, split by prompt kind ("point" / "box")."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ious: dict[str, list[float]] = {"point": [], "box": []}

    def process(self, pred_masks: np.ndarray, gt_masks: np.ndarray, kinds: list[str]) -> list[float]:
        """pred_masks, gt_masks: bool [P, H, W] (one row per prompt, same order); kinds: "point" | "box" [P]."""
        if pred_masks.shape != gt_masks.shape:
            raise ValueError(f"prompt predictions {pred_masks.shape} and ground truth {gt_masks.shape} differ")
        if len(kinds) != len(gt_masks):
            raise ValueError(f"{len(gt_masks)} prompt masks but {len(kinds)} prompt kinds")
        out = []
        for p, g, k in zip(pred_masks, gt_masks, kinds):
            if k not in self.ious:
                raise ValueError(f"unknown prompt kind {k!r} (expected 'point' or 'box')")
            iou = mask_iou(p, g)
            self.ious[k].append(iou)
            out.append(iou)
        return out

    def evaluate(self) -> dict:
        """{"miou", "count", "point": {"miou", "count"}, "box": {...}}; nan when there were no prompts."""
        allv = self.ious["point"] + self.ious["box"]

        def stat(v: list[float]) -> dict:
            return {"miou": float(np.mean(v)) if v else float("nan"), "count": len(v)}

        return {**stat(allv), "point": stat(self.ious["point"]), "box": stat(self.ious["box"])}

    def merge(self, other: "PromptEvaluator") -> None:
        """Append another evaluator's prompt IoUs after ours (the mean is over every prompt)."""
        for k in self.ious:
            self.ious[k] += other.ious[k]

    def state_dict(self) -> dict:
        return {k: list(v) for k, v in self.ious.items()}

    def load_state_dict(self, state: dict) -> None:
        self.ious = {"point": list(state.get("point", [])), "box": list(state.get("box", []))}


__all__ = ["PromptEvaluator"]
