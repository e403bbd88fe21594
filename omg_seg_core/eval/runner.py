"""One evaluation run over many frames: ground-truth conversion, every metric, skip counts, worst frames, and a
checkpointable state (so `omg-seg-eval` resumes). ROS-free: the bag tool and the COCO-panoptic reader both feed it.

Class indices: predictions index the model vocabulary; ground truth must already be mapped to the same list
(`Evaluation.class_names`, things flagged in `is_thing`); unknown GT classes are appended by the caller.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from omg_seg_core.eval.depth3d import Depth3DEvaluator
from omg_seg_core.eval.latency import LatencyRecorder
from omg_seg_core.eval.mask_ap import MaskAPEvaluator
from omg_seg_core.eval.panoptic_quality import PanopticEvaluator, panoptic_from_labels, panoptic_from_segments
from omg_seg_core.eval.prompts import PromptEvaluator
from omg_seg_core.eval.semantic import SemanticEvaluator
from omg_seg_core.structures import Segments


@dataclass
class GroundTruth:
    """semantic: uint16 [H, W] class index (65535 void); instance_ids: uint16 [H, W] (0 none) or None;
    prompts: (kind "point" | "box", xyxy float [4], target instance id); objects_3d: the things' true 3D boxes,
    (instance ids int [G], centres float [G, 3], sizes float [G, 3]) in the camera optical frame, metres."""

    semantic: np.ndarray
    instance_ids: Optional[np.ndarray] = None
    prompts: list[tuple[str, np.ndarray, int]] = field(default_factory=list)
    objects_3d: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.semantic.shape[0]), int(self.semantic.shape[1])


@dataclass
class SourceFrame:
    """One frame from an evaluation source (bag or dataset), in source order.

    rgb None = not evaluable (see `skips`) or not decoded because a resumed run already did it; gt None = no
    ground truth (latency only); recorded = predictions read from the source instead of running the model
    (class ids already mapped to the evaluation list); skips = (reason, example) for the report's counts;
    sequence changes mark video boundaries (tracker reset)."""

    index: int
    stamp: int
    rgb: Optional[np.ndarray] = None
    gt: Optional[GroundTruth] = None
    recorded: Optional[Segments] = None
    skips: list[tuple[str, str]] = field(default_factory=list)
    sequence: int = 0
    depth: Any = None     # spatial.DepthFrame registered to rgb (bags with depth + camera_info), else None


def gt_from_segments(segments: Segments) -> GroundTruth:
    """Ground truth given as Segments (e.g. a SegmentArray): thing instance id = track id, else 1-based index."""
    return GroundTruth(segments.semantic_map(), segments.instance_id_map(use_track_ids=True, things_only=True))


def segments_from_gt(gt: GroundTruth, class_names: Sequence[str], is_thing: Sequence[bool]) -> Segments:
    """Ground truth -> panoptic Segments (score 1, track id = instance id); crowd regions (thing pixels with
    instance 0) become one segment of their class with track id 0."""
    things = [c for c, t in enumerate(is_thing) if t]
    frame = panoptic_from_labels(gt.semantic, gt.instance_ids, things)
    keys = sorted(frame.categories)
    masks = np.stack([frame.ids == k for k in keys]) if keys else np.zeros((0, *gt.shape), bool)
    cats = [frame.categories[k] for k in keys]
    inst = gt.instance_ids if gt.instance_ids is not None else np.zeros(gt.shape, np.uint16)
    tids = [int(inst[m].max()) if is_thing[c] else 0 for m, c in zip(masks, cats)]
    return Segments(masks, np.ones(len(keys)), cats, [class_names[c] for c in cats], [is_thing[c] for c in cats],
                    track_ids=tids, task="panoptic")


def prompt_target_mask(gt: GroundTruth, target: int) -> np.ndarray:
    """Mask of the GT instance a prompt points at (instance id `target`), empty if absent."""
    if gt.instance_ids is None:
        return np.zeros(gt.shape, bool)
    return gt.instance_ids == target


class Evaluation:
    """Accumulates metrics frame by frame. Use `process` for evaluated frames and `skip` for the others."""

    def __init__(self, class_names: Sequence[str], is_thing: Sequence[bool], worst_k: int = 6,
                 thumb_long_side: int = 320) -> None:
        self.class_names = list(class_names)
        self.is_thing = [bool(t) for t in is_thing]
        self.things = [c for c, t in enumerate(self.is_thing) if t]
        self.pq = PanopticEvaluator(self.class_names, self.is_thing)
        self.sem = SemanticEvaluator(self.class_names)
        self.ap = MaskAPEvaluator(self.class_names, self.is_thing)
        self.prompts = PromptEvaluator()
        self.latency = LatencyRecorder()
        self.depth3d = Depth3DEvaluator(min_z=0.0, max_z=1000.0)  # every object a bag's ground truth has
        self.worst_k, self.thumb = worst_k, thumb_long_side
        self.reset()

    def reset(self) -> None:
        """Forget every frame (the evaluators' own `reset`)."""
        for ev in (self.pq, self.sem, self.ap, self.prompts, self.latency, self.depth3d):
            ev.reset()
        self.skips: Counter[str] = Counter()
        self.frames: list[dict] = []           # one small record per evaluated frame (report.json "frames")
        self.worst: list[tuple[float, int, dict]] = []  # heap of (badness, -order, thumbnails)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skips[reason] += n

    def process(self, key: dict, image: Optional[np.ndarray], gt: Optional[GroundTruth],
                  panoptic: Optional[Segments] = None, instances: Optional[Segments] = None,
                  semantic: Optional[Segments] = None, prompt_masks: Optional[np.ndarray] = None,
                  timings: Optional[dict[str, float]] = None) -> dict:
        """Add one frame. key: identifying info (index, stamp); gt None = latency only. Returns its record."""
        rec: dict = dict(key)
        if timings:
            self.latency.process(timings)
            rec["latency_ms"] = {k: round(float(v), 3) for k, v in timings.items()}
        if gt is not None:
            gt_frame = panoptic_from_labels(gt.semantic, gt.instance_ids, self.things)
            if panoptic is not None:
                st = self.pq.process(panoptic_from_segments(panoptic), gt_frame)
                rec.update(pq=None if np.isnan(st.pq) else round(st.pq, 6), tp=st.tp, fp=st.fp, fn=st.fn)
            if semantic is not None:
                m = self.sem.process(semantic.semantic_map(), gt.semantic)
                rec["miou"] = None if np.isnan(m) else round(m, 6)
            if instances is not None:
                ids = [k for k in sorted(gt_frame.categories) if self.is_thing[gt_frame.categories[k]]]
                masks = np.stack([gt_frame.ids == k for k in ids]) if ids else np.zeros((0, *gt.shape), bool)
                self.ap.process(instances, masks, np.array([gt_frame.categories[k] for k in ids], np.int64),
                                np.array([k in gt_frame.crowd for k in ids], bool))
            if prompt_masks is not None and gt.prompts:
                targets = np.stack([prompt_target_mask(gt, t) for _, _, t in gt.prompts])
                ious = self.prompts.process(prompt_masks, targets, [k for k, _, _ in gt.prompts])
                rec["prompt_miou"] = round(float(np.mean(ious)), 6)
            if gt.objects_3d is not None and panoptic is not None and panoptic.boxes_3d is not None \
                    and gt.instance_ids is not None:
                ids, centres, sizes = gt.objects_3d
                masks = gt.instance_ids[None] == np.asarray(ids, np.int64).reshape(-1, 1, 1)
                self.depth3d.process(panoptic, masks, centres, sizes)
            if image is not None and panoptic is not None:
                self._keep_if_worst(rec, image, panoptic, segments_from_gt(gt, self.class_names, self.is_thing))
        self.frames.append(rec)
        return rec

    def _keep_if_worst(self, rec: dict, image: np.ndarray, pred: Segments, gt: Segments) -> None:
        # Badness = 1 - frame PQ (a frame with no segment at all is not "bad"); ties: the earlier frame stays.
        badness = 1.0 - rec["pq"] if rec.get("pq") is not None else -1.0
        item = (badness, -len(self.frames), {})  # min-heap: the root is the least bad frame kept
        if len(self.worst) >= self.worst_k and item <= self.worst[0]:
            return  # rendering thumbnails only for frames that enter the top-k keeps the loop cheap
        from omg_seg_core.eval.report import overlay_thumbnail

        item[2].update(index=rec.get("index"), stamp=rec.get("stamp"), pq=rec.get("pq"),
                       pred=overlay_thumbnail(image, pred, self.thumb), gt=overlay_thumbnail(image, gt, self.thumb))
        if len(self.worst) < self.worst_k:
            heapq.heappush(self.worst, item)
        else:
            heapq.heapreplace(self.worst, item)

    def worst_frames(self) -> list[dict]:
        """Thumbnail dicts of the worst frames, worst first."""
        return [it[2] for it in sorted(self.worst, key=lambda it: (-it[0], -it[1]))]

    def evaluate(self) -> dict:
        pq = self.pq.evaluate()
        return {
            "frames_evaluated": len(self.frames),
            "frames_with_ground_truth": pq["num_images"] if pq["num_images"] else self.sem.num_images,
            "skipped": dict(self.skips),
            "panoptic": pq if self.pq.num_images else None,
            "semantic": self.sem.evaluate() if self.sem.num_images else None,
            "mask_ap": self.ap.evaluate() if self.ap.images else None,
            "prompts": self.prompts.evaluate() if (self.prompts.ious["point"] or self.prompts.ious["box"]) else None,
            "latency_ms": self.latency.evaluate(),
            "depth_3d": self.depth3d.evaluate() if self.depth3d.gt_total else None,
        }

    def label_source(self, name: str) -> None:
        """Name the source (e.g. the bag) of every frame record and worst-frame thumbnail not named yet."""
        for rec in self.frames:
            rec.setdefault("source", name)
        for item in self.worst:
            item[2].setdefault("source", name)

    def merge(self, other: "Evaluation") -> None:
        """Append another evaluation's frames after ours (same class list), as if this evaluation had processed
        them next: every evaluator merges its accumulators (counts, exact sums, lists; never averages), frame
        records concatenate and the worst-frame heap keeps the top `worst_k` with the same order tie-break."""
        if (other.class_names, other.is_thing) != (self.class_names, self.is_thing):
            raise ValueError("Evaluation.merge: the class lists differ (evaluate such sources separately)")
        for mine, theirs in ((self.pq, other.pq), (self.sem, other.sem), (self.ap, other.ap),
                             (self.prompts, other.prompts), (self.latency, other.latency),
                             (self.depth3d, other.depth3d)):
            mine.merge(theirs)
        self.skips.update(other.skips)
        offset = len(self.frames)
        self.frames += [dict(r) for r in other.frames]
        shifted = [(b, neg_order - offset, thumbs) for b, neg_order, thumbs in other.worst]
        self.worst = heapq.nlargest(self.worst_k, self.worst + shifted, key=lambda it: it[:2])
        heapq.heapify(self.worst)

    def state_dict(self) -> dict:
        return {"class_names": self.class_names, "pq": self.pq.state_dict(), "sem": self.sem.state_dict(),
                "ap": self.ap.state_dict(), "prompts": self.prompts.state_dict(),
                "latency": self.latency.state_dict(), "depth3d": self.depth3d.state_dict(),
                "skips": dict(self.skips), "frames": list(self.frames),
                "worst": list(self.worst)}

    def load_state_dict(self, s: dict) -> None:
        if s["class_names"] != self.class_names:
            raise ValueError("saved evaluation state has a different class list")
        self.pq.load_state_dict(s["pq"])
        self.sem.load_state_dict(s["sem"])
        self.ap.load_state_dict(s["ap"])
        self.prompts.load_state_dict(s["prompts"])
        self.latency.load_state_dict(s["latency"])
        if "depth3d" in s:  # states saved before depth existed have none
            self.depth3d.load_state_dict(s["depth3d"])
        self.skips = Counter(s["skips"])
        self.frames = list(s["frames"])
        self.worst = list(s["worst"])
        heapq.heapify(self.worst)


__all__ = ["GroundTruth", "SourceFrame", "Evaluation", "gt_from_segments", "segments_from_gt", "prompt_target_mask"]
