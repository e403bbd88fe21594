"""COCO mask AP (iouType "segm") with pycocotools, fed incrementally with RLE-encoded masks.

Masks are RLE-encoded as they arrive (a few hundred bytes each), so a long evaluation keeps only RLEs in
memory; the COCO objects are built once in `evaluate()`. Categories are 0-based class indices of the evaluator's
class list (category id in the COCO dicts = index + 1, the convention of omg_seg_core.data.coco_panoptic).
By default only thing classes are scored (COCO instance AP); `things_only=False` scores every class.
"""
from __future__ import annotations

import contextlib
import io
from typing import Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from omg_seg_core.structures import Segments


def encode_mask(mask: np.ndarray) -> dict:
    """bool [H, W] -> COCO RLE with a str "counts" (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


class MaskAPEvaluator:
    """Streaming collection of ground-truth and predicted instance masks; `evaluate()` runs COCOeval."""

    def __init__(self, class_names: Sequence[str], is_thing: Sequence[bool], things_only: bool = True) -> None:
        self.class_names = list(class_names)
        self.is_thing = np.asarray(is_thing, bool)
        self.scored = self.is_thing if things_only else np.ones(len(self.class_names), bool)
        self.reset()

    def reset(self) -> None:
        self.images: list[dict] = []
        self.gt: list[dict] = []
        self.dt: list[dict] = []

    def process(self, pred: Segments, gt_masks: np.ndarray, gt_classes: np.ndarray,
                gt_crowd: Optional[np.ndarray] = None) -> int:
        """Add one image. pred: scored instances (class_ids 0-based, scores); gt_masks bool [G, H, W];
        gt_classes int [G]; gt_crowd bool [G] (COCO iscrowd). Returns the image id used."""
        h, w = pred.image_size
        if gt_masks.shape[1:] != (h, w):
            raise ValueError(f"prediction {(h, w)} and ground truth {tuple(gt_masks.shape[1:])} differ in size")
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": h, "width": w})
        crowd = np.zeros(len(gt_classes), bool) if gt_crowd is None else np.asarray(gt_crowd, bool)
        for m, c, cr in zip(gt_masks, gt_classes, crowd):
            if not (0 <= c < len(self.class_names)) or not self.scored[c] or not m.any():
                continue
            rle = encode_mask(m)
            self.gt.append({"id": len(self.gt) + 1, "image_id": image_id, "category_id": int(c) + 1,
                            "segmentation": rle, "area": float(m.sum()), "iscrowd": int(cr),
                            "bbox": [float(x) for x in mask_utils.toBbox(rle)]})
        for m, c, s in zip(pred.masks, pred.class_ids, pred.scores):
            if not (0 <= c < len(self.class_names)) or not self.scored[c] or not m.any():
                continue
            self.dt.append({"image_id": image_id, "category_id": int(c) + 1, "segmentation": encode_mask(m),
                            "score": float(s)})
        return image_id

    def evaluate(self) -> dict:
        """{"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "per_class": {name: ap}, "num_images",
        "num_gt", "num_pred"}; AP is nan without ground-truth instances (COCOeval's -1 becomes nan)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        out = {"num_images": len(self.images), "num_gt": len(self.gt), "num_pred": len(self.dt)}
        keys = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"]
        if not self.gt:
            return {**out, **{k: float("nan") for k in keys}, "per_class": {}}
        if not self.dt:
            # Ground truth exists but nothing was predicted: every instance is missed, AP is exactly 0.
            return {**out, **{k: 0.0 for k in keys}, "per_class": {}}
        cats = [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names) if self.scored[i]]
        # pycocotools prints progress to stdout; keep the CLI's output readable.
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = {"images": self.images, "annotations": self.gt, "categories": cats}
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes([dict(d) for d in self.dt])
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(x) if x >= 0 else float("nan") for x in ev.stats[:6]]
        per_class = {}
        precision = ev.eval["precision"]  # [T, R, K, A, M]
        for k, cat_id in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            if p.size:
                per_class[self.class_names[cat_id - 1]] = float(p.mean())
        return {**out, **dict(zip(keys, stats)), "per_class": per_class}

    def merge(self, other: "MaskAPEvaluator") -> None:
        """Append another evaluator's images after ours (same class list). Image and annotation ids are shifted
        exactly as if those images had been processed here next, so `evaluate()` sees the same COCO data as one
        evaluator fed every image in that order."""
        if other.class_names != self.class_names:
            raise ValueError("MaskAPEvaluator.merge: the class lists differ")
        di, dg = len(self.images), len(self.gt)
        self.images += [{**im, "id": im["id"] + di} for im in other.images]
        self.gt += [{**g, "id": g["id"] + dg, "image_id": g["image_id"] + di} for g in other.gt]
        self.dt += [{**d, "image_id": d["image_id"] + di} for d in other.dt]

    def state_dict(self) -> dict:
        return {"images": list(self.images), "gt": list(self.gt), "dt": list(self.dt)}

    def load_state_dict(self, state: dict) -> None:
        self.images, self.gt, self.dt = list(state["images"]), list(state["gt"]), list(state["dt"])


__all__ = ["MaskAPEvaluator", "encode_mask"]
