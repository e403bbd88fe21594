"""Exemplar prompts on generated scenes (issue: "segment everything like this"): `kind_frames`, `evaluate_like`,
`evaluate_taught`.

A *kind* scene is a held-out generated scene in which one unstacked thing (the example) gets `copies` identical
copies (same shape, colour, size; another yaw) and one same-shape copy repainted another colour (the confuser),
each at a free spot of the visible table. The object's *kind* = (shape, colour); every visible object of the kind
(the example, its copies, and any the scene already had) is a ground-truth instance.

- `evaluate_like`: the example is given by a click (its deepest pixel, as the prompt evaluation clicks) ->
  `predictor.exemplar` -> `predictor.like` over the whole frame; mask AP50 of the results against the kind's
  instances (pycocotools via eval.mask_ap, one class), and the confusion: the fraction of confusers returned at or
  above the threshold, and how many of the kind were.
- `evaluate_taught`: a name taught on frame 0 of a generated video by a click on one object
  (`VideoSession.add_exemplar(..., track=True)`), then `session.text("my <name>")` on each later frame: top-1 is
  correct when the first result has mask IoU >= 0.5 with that object (frames where it is visible, >= MIN_AREA).
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from ..data.synth import SynthGenerator, world
from ..data.synth.generator import SynthFrame
from ..eval.mask_ap import MaskAPEvaluator
from ..structures import Segments, mask_iou
from .data import click_point
from .lookalike_eval import MIN_AREA, add_copy, edited_frames


def kind_frames(n: int, seed: int = 11, copies: int = 2, size: tuple[int, int] = (320, 240)
                ) -> Iterator[tuple[SynthFrame, int, list[int], list[int]]]:
    """Yield (frame, example uid, uids of the kind incl. the example, confuser uids) for `n` kind scenes of the
    heldout split; the example and at least one other of its kind are visible (>= MIN_AREA px)."""
    def edit(scene: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        cands = [o for o in scene.objects if o.support == 0 and o.shape != "ring"]
        if not cands:
            return None, None
        ex = cands[int(rng.integers(len(cands)))]
        for _ in range(copies):
            scene = add_copy(scene, ex, rng) if scene is not None else None
        other = [c for c in world.COLOURS if c != ex.colour]
        return (add_copy(scene, ex, rng, colour=other[int(rng.integers(len(other)))]) if scene else None), ex

    def accept(frame: SynthFrame, ex: Any) -> Optional[tuple[SynthFrame, int, list[int], list[int]]]:
        areas = {s.id: s.area for s in frame.segments if s.is_thing}
        kind = [s.id for s in frame.segments if s.is_thing and s.shape == ex.shape and s.colour == ex.colour]
        confusers = [s.id for s in frame.segments if s.is_thing and s.shape == ex.shape and s.colour != ex.colour]
        if areas.get(ex.uid, 0) >= MIN_AREA and sum(areas.get(k, 0) >= MIN_AREA for k in kind) >= 2:
            return frame, ex.uid, kind, confusers
        return None

    return edited_frames(n, seed, size, 6, edit, accept)


def evaluate_like(predictor: Any, n: int = 40, seed: int = 11, threshold: float = 0.0, progress: bool = False
                  ) -> dict[str, Any]:
    """AP50 of `like` against the kind's instances and the confusion with same-shape other-colour objects over `n`
    kind scenes (module docstring). `threshold`: the similarity a result must reach to count as returned (AP uses
    every result, ranked by score)."""
    from tqdm import tqdm

    ap = MaskAPEvaluator(["kind"], [True])
    kind_total = kind_hit = conf_total = conf_hit = 0
    top1 = 0
    for frame, ex_uid, kind, confusers in tqdm(kind_frames(n, seed), total=n, desc="kind scenes",
                                               disable=not progress):
        predictor.set_image(frame.rgb)
        click = click_point(frame.panoptic == ex_uid).reshape(1, 2)
        example = predictor.prompt(points=click)
        ex = predictor.exemplar(mask=example.masks[0])
        res = predictor.like([ex], threshold=0.0, max_results=20)
        res.class_ids = np.zeros(len(res), np.int64)
        gt = np.stack([frame.panoptic == k for k in kind])
        small = gt.reshape(len(kind), -1).sum(1) < MIN_AREA  # barely visible: ignored (COCO crowd), not counted
        ap.process(res, gt, np.zeros(len(kind), np.int64), gt_crowd=small)
        top1 += int(len(res) > 0 and max(mask_iou(res.masks[0], g) for g in gt) >= 0.5)
        kept = res.masks[res.scores >= threshold]
        found = lambda m: any(mask_iou(k, m) >= 0.5 for k in kept)  # noqa: E731
        for k in [k for k, s in zip(kind, small) if not s]:
            kind_total += 1
            kind_hit += int(found(frame.panoptic == k))
        for c in confusers:
            if (frame.panoptic == c).sum() >= MIN_AREA:
                conf_total += 1
                conf_hit += int(found(frame.panoptic == c))
    scenes = len(ap.images)
    out = ap.evaluate()
    return {"scenes": scenes, "ap50": out["ap50"], "ap": out["ap"],
            "top1_kind": top1 / max(scenes, 1), "threshold": threshold,
            "recall_kind_at_threshold": kind_hit / max(kind_total, 1), "kind_instances": kind_total,
            "confusers_returned": conf_hit / max(conf_total, 1), "confusers": conf_total}


def evaluate_taught(session_factory: Any, n: int = 10, length: int = 16, seed: int = 11, progress: bool = False
                    ) -> dict[str, Any]:
    """Top-1 of "my <name>" on the later frames of `n` generated videos after teaching the name on frame 0
    (module docstring). `session_factory()` -> a fresh VideoSession (tracking on) per video."""
    from tqdm import tqdm

    gen = SynthGenerator(320, 240, split="heldout", seed=seed)
    hits = frames = videos = 0
    try:
        for v in tqdm(range(n), desc="taught names", disable=not progress):
            session = session_factory()
            seq = list(gen.sequence(v, length))
            first = seq[0]
            things = [s for s in first.segments if s.is_thing and s.area >= MIN_AREA]
            if not things:
                continue
            obj = max(things, key=lambda s: s.area)
            session.step(first.rgb, stamp=0.0)
            click = click_point(first.panoptic == obj.id).reshape(1, 2)
            session.add_exemplar("my thing", points=click, track=True)
            videos += 1
            for t, frame in enumerate(seq[1:], 1):
                session.step(frame.rgb, stamp=t / 10)
                gt = frame.panoptic == obj.id
                if gt.sum() < MIN_AREA:
                    continue
                seg, _ = session.text("segment my thing", max_results=1)
                frames += 1
                hits += int(len(seg) > 0 and mask_iou(seg.masks[0], gt) >= 0.5)
    finally:
        gen.close()
    return {"videos": videos, "frames": frames, "top1": hits / max(frames, 1)}


__all__ = ["kind_frames", "evaluate_like", "evaluate_taught"]
