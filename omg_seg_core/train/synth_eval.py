"""Quality on held-out generated scenes: the numbers `omg-seg-eval-synth` prints and the quality-floor test checks.

Scenes come from the generator's "heldout" split (its own seed stream, never used for training; every scene shows
at least one colour-shape combination that the training split never contains). Per image, through the public
predictor API only:
- panoptic(): PQ / SQ / RQ (panopticapi semantics, `eval/panoptic_quality.py`);
- semantic(): semantic mIoU over the world's classes (`eval/semantic.py`);
- prompt(points=[click]): one click per ground-truth segment at its most interior pixel (maximum of the distance
  transform) -> click mIoU; prompt(boxes=[gt box]) -> box mIoU (`eval/prompts.py`);
- text(phrase): for every thing whose generated phrase singles it out, top-1 is correct when the first result's
  mask has IoU >= 0.5 with that thing; accuracy is split by whether its (colour, shape) combination is seen in
  training or held out;
- 3D (`eval/depth3d.py`): the panoptic things' `Boxes3D` from the frame's clean depth and from the depth-sensor
  model (data/synth/depth_sensor.py), and from clean depth with the ground-truth masks (the depth step alone),
  against each object's true 3D box; objects whose centre is 0.4-1.5 m from the camera.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..data.synth import world
from ..data.synth.generator import SynthFrame, SynthGenerator
from ..eval.panoptic_quality import PanopticEvaluator, PanopticFrame, panoptic_from_segments
from ..eval.depth3d import Depth3DEvaluator, format_depth_report
from ..eval.prompts import PromptEvaluator
from ..spatial import segment_boxes_3d
from ..structures import mask_iou
from ..eval.semantic import SemanticEvaluator
from .data import click_point, mask_box

#: Words that make a phrase positional ("the leftmost red box"): reported separately, they need spatial reasoning.
POSITION_WORDS = ("left", "right", "leftmost", "rightmost", "second", "third", "fourth", "number")


@dataclass
class ReferringStats:
    correct: dict[str, int] = field(default_factory=lambda: {"seen": 0, "unseen": 0, "positional": 0})
    total: dict[str, int] = field(default_factory=lambda: {"seen": 0, "unseen": 0, "positional": 0})

    def process(self, group: str, ok: bool) -> None:
        self.total[group] += 1
        self.correct[group] += int(ok)

    def accuracy(self, group: str) -> float:
        return self.correct[group] / self.total[group] if self.total[group] else float("nan")


def gt_panoptic(frame: SynthFrame) -> PanopticFrame:
    return PanopticFrame(frame.panoptic.astype(np.int64), {s.id: s.class_id for s in frame.segments})


def evaluate_frames(predictor, frames: list[SynthFrame], progress: bool = False) -> dict[str, Any]:
    """Run every task on `frames` and return the metrics dict (see module docstring)."""
    from tqdm import tqdm

    names = list(world.CLASS_NAMES)
    is_thing = [world.is_thing_class(i) for i in range(len(names))]
    pq = PanopticEvaluator(names, is_thing)
    sem = SemanticEvaluator(names)
    prompts = PromptEvaluator()
    ref = ReferringStats()
    depth_evals = {k: Depth3DEvaluator() for k in DEPTH_MODES}
    for frame in tqdm(frames, desc="eval-synth", disable=not progress):
        predictor.set_image(frame.rgb)
        pan = predictor.panoptic()
        pq.process(panoptic_from_segments(pan), gt_panoptic(frame))
        if frame.depth is not None:
            _process_depth(depth_evals, frame, pan)
        sem.process(predictor.semantic().semantic_map().astype(np.int64), frame.semantic)
        gt_masks = frame.masks()
        if len(gt_masks):
            clicks = np.stack([click_point(m) for m in gt_masks])
            boxes = np.stack([mask_box(m) for m in gt_masks])
            pc = predictor.prompt(points=clicks)
            pb = predictor.prompt(boxes=boxes)
            prompts.process(pc.masks, gt_masks, ["point"] * len(gt_masks))
            prompts.process(pb.masks, gt_masks, ["box"] * len(gt_masks))
        for seg, m in zip(frame.segments, gt_masks):
            if not seg.is_thing or not seg.phrase or not seg.phrase_unique:
                continue
            words = seg.phrase.split()
            if any(w in POSITION_WORDS for w in words):
                group = "positional"
            else:
                group = "unseen" if (seg.colour, seg.shape) in world.HELD_OUT_COMBOS else "seen"
            res = predictor.text(seg.phrase, max_results=1)
            ref.process(group, bool(len(res)) and mask_iou(res.masks[0], m) >= 0.5)
    p = pq.evaluate()
    s = sem.evaluate()
    pr = prompts.evaluate()
    return {
        "images": len(frames),
        "pq": p["all"]["pq"], "sq": p["all"]["sq"], "rq": p["all"]["rq"],
        "pq_things": p["things"]["pq"], "pq_stuff": p["stuff"]["pq"],
        "miou": s["miou"], "pixel_accuracy": s["pixel_accuracy"],
        "click_miou": pr["point"]["miou"], "box_miou": pr["box"]["miou"], "prompts": pr["point"]["count"],
        "referring_seen": ref.accuracy("seen"), "referring_unseen": ref.accuracy("unseen"),
        "referring_positional": ref.accuracy("positional"),
        "referring_counts": dict(ref.total),
        "per_class_pq": {k: v["pq"] for k, v in p["per_class"].items()},
        "per_class_iou": s["per_class"],
        "depth_3d": {k: e.evaluate() for k, e in depth_evals.items()},
    }


#: The 3D evaluations of eval-synth: predicted masks on clean / sensor-model depth, ground-truth masks on clean.
DEPTH_MODES = ("clean", "noisy", "gt_masks_clean")


def _process_depth(evals: dict[str, Depth3DEvaluator], frame: SynthFrame, pan) -> None:
    things = frame.things()
    ids = np.array([t.id for t in things], np.int32)
    gt_masks = frame.panoptic[None] == ids[:, None, None]
    centres = np.array([t.center_3d for t in things], np.float64).reshape(-1, 3)
    sizes = np.array([t.size_3d for t in things], np.float64).reshape(-1, 3)
    gt_seg = frame.to_segments()
    for mode, seg, depth in (("clean", pan, frame.depth), ("noisy", pan, frame.sensor_depth()),
                             ("gt_masks_clean", gt_seg, frame.depth)):
        seg = seg[np.arange(len(seg))]  # a copy: boxes_3d is set per mode
        seg.boxes_3d = segment_boxes_3d(seg, depth, frame.camera)
        evals[mode].process(seg, gt_masks, centres, sizes)


def heldout_frames(n: int, seed: int, size: tuple[int, int] = (320, 240), split: str = "heldout") -> list[SynthFrame]:
    """n frames of `split` (default "heldout": seeds never used in training, >= 1 held-out combination each)."""
    gen = SynthGenerator(size[0], size[1], split, seed)
    try:
        return [gen.frame(i) for i in range(n)]
    finally:
        gen.close()


def measure_speed(predictor, frames: list[SynthFrame], repeats: int = 20) -> dict[str, float]:
    """Median ms of set_image + panoptic() (and of its image-graph and post-processing stages, from the predictor's
    `last_timings`), and of one prompt() / text() call on cached features."""
    def med(xs: list[float]) -> float:
        return float(np.median(xs)) * 1e3

    img_t, graph_t, post_t, prm_t, txt_t = [], [], [], [], []
    for k in range(repeats + 3):
        f = frames[k % len(frames)]
        t0 = time.perf_counter()
        predictor.set_image(f.rgb)
        predictor.panoptic()
        t1 = time.perf_counter()
        stages = dict(predictor.last_timings)
        h, w = f.rgb.shape[:2]
        predictor.prompt(points=np.array([[w / 2, h / 2]], np.float32))
        t2 = time.perf_counter()
        predictor.text("red box")
        t3 = time.perf_counter()
        if k >= 3:  # warm-up
            img_t.append(t1 - t0)
            graph_t.append(stages["image_graph"] / 1e3)
            post_t.append(stages["postprocess"] / 1e3)
            prm_t.append(t2 - t1)
            txt_t.append(t3 - t2)
    return {"set_image_panoptic_ms": med(img_t), "image_graph_ms": med(graph_t), "postprocess_ms": med(post_t),
            "prompt_ms": med(prm_t), "text_ms": med(txt_t), "repeats": repeats}


def format_report(m: dict[str, Any], speed: Optional[dict[str, float]] = None) -> str:
    rc = m["referring_counts"]
    lines = [
        f"held-out images: {m['images']}",
        f"PQ            {m['pq']:.3f}  (SQ {m['sq']:.3f}, RQ {m['rq']:.3f}; things {m['pq_things']:.3f}, "
        f"stuff {m['pq_stuff']:.3f})",
        f"semantic mIoU {m['miou']:.3f}  (pixel accuracy {m['pixel_accuracy']:.3f})",
        f"click mIoU    {m['click_miou']:.3f}  ({m['prompts']} single clicks)",
        f"box mIoU      {m['box_miou']:.3f}",
        f"referring top-1 seen {m['referring_seen']:.3f} (n={rc['seen']}), held-out combinations "
        f"{m['referring_unseen']:.3f} (n={rc['unseen']}), positional phrases {m['referring_positional']:.3f} "
        f"(n={rc['positional']})",
    ]
    for k, v in (m.get("depth_3d") or {}).items():
        lines.append(format_depth_report(k, v))
    if speed:
        lines.append(f"speed: set_image+panoptic {speed['set_image_panoptic_ms']:.1f} ms, prompt {speed['prompt_ms']:.1f} "
                     f"ms, text {speed['text_ms']:.1f} ms (median of {speed['repeats']})")
    return "\n".join(lines)


__all__ = ["evaluate_frames", "heldout_frames", "measure_speed", "format_report", "gt_panoptic", "POSITION_WORDS"]
