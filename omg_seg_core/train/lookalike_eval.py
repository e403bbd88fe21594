"""Text requests with a spatial hint on scenes built to hold a look-alike of the target (issue: "the red box I'm
pointing to"): `lookalike_frames`, `evaluate_hints`.

A look-alike scene is a held-out generated scene in which one thing (the target) gets an identical twin (same
shape, colour, size, scale; another yaw) placed elsewhere on the table, so its phrase ("the red box") matches two
objects. Per scene, top-1 is correct when the first result's mask has IoU >= 0.5 with the target:
- phrase + a point on the target (its most interior pixel);
- phrase alone (about chance between the twins is expected: the phrase cannot tell them apart);
- phrase + a point NEAR the target: a pixel 5-20 px outside its mask (and not on the twin);
- "this" + the point on the target (a click).
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np

from ..data.synth import SynthGenerator
from ..data.synth.generator import SynthFrame
from ..structures import mask_iou
from .data import click_point

T = TypeVar("T")
MIN_AREA = 150  # px: both twins must be clearly visible at 320x240


def _twin(scene, rng: np.random.Generator, tries: int = 60):
    """(scene with a copy of a random unstacked thing at a free spot of the visible table, target uid), or
    (None, None) when nothing fits. The other objects stay where they are."""
    cands = [o for o in scene.objects if o.support == 0 and o.shape != "ring"]
    if not cands:
        return None, None
    target = cands[int(rng.integers(len(cands)))]
    out = add_copy(scene, target, rng, tries)
    return (out, target.uid) if out is not None else (None, None)


def add_copy(scene, source, rng: np.random.Generator, tries: int = 60, colour: str = ""):
    """`scene` with a copy of object `source` (another yaw; `colour`: repainted that world colour) at a free spot of
    the visible table, uid = the largest + 1; None when no spot is free. The other objects stay where they are."""
    from ..data.synth import world

    twin = deepcopy(source)
    twin.uid = max(o.uid for o in scene.objects) + 1
    twin.yaw = float(rng.uniform(0, 2 * np.pi))
    if colour:
        twin.colour = colour
        twin.albedo = np.asarray(world.COLOURS[colour], np.float32) / 255.0
    tw, td, th = scene.table_size
    lo = np.maximum(scene.camera.target[:2] - [0.35, 0.25], -np.array([tw, td]) / 2 + twin.radius)
    hi = np.minimum(scene.camera.target[:2] + [0.35, 0.25], np.array([tw, td]) / 2 - twin.radius)
    if np.any(hi <= lo):
        return None
    for _ in range(tries):
        xy = rng.uniform(lo, hi)
        if all(np.hypot(*(xy - o.position[:2])) >= (twin.radius + o.radius) * 1.05 for o in scene.objects):
            twin.position = np.array([xy[0], xy[1], th])
            return scene.with_objects(list(scene.objects) + [twin])
    return None


def edited_frames(n: int, seed: int, size: tuple[int, int], stream: int,
                  edit: Callable[[Any, np.random.Generator], tuple[Any, Any]],
                  accept: Callable[[SynthFrame, Any], Optional[T]]) -> Iterator[T]:
    """Yield accept(frame, info) for `n` scenes of the heldout split built for an evaluation: scene i is changed by
    edit(scene, rng) -> (scene, info) (scene None: skipped), rendered, and counted when `accept` returns something
    (not None). rng: the generator's random stream `stream` of scene i, also used to render it. At most 50 x n
    scenes are tried."""
    gen = SynthGenerator(size[0], size[1], split="heldout", seed=seed)
    found, i = 0, 0
    try:
        while found < n and i < 50 * n:
            rng = gen.rng(stream, i)
            scene, info = edit(gen.scene(i), rng)
            i += 1
            if scene is None:
                continue
            out = accept(gen.render(scene, rng, i), info)
            if out is not None:
                found += 1
                yield out
    finally:
        gen.close()


def lookalike_frames(n: int, seed: int = 11, size: tuple[int, int] = (320, 240)) -> Iterator[tuple[SynthFrame, int, int]]:
    """Yield (frame, target uid, twin uid) for `n` look-alike scenes of the heldout split."""
    def edit(scene: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        scene, target = _twin(scene, rng)
        return scene, None if scene is None else (target, max(o.uid for o in scene.objects))

    def accept(frame: SynthFrame, ids: tuple[int, int]) -> Optional[tuple[SynthFrame, int, int]]:
        areas = {s.id: s.area for s in frame.segments if s.is_thing}
        return (frame, *ids) if all(areas.get(u, 0) >= MIN_AREA for u in ids) else None

    return edited_frames(n, seed, size, 4, edit, accept)


def near_point(target: np.ndarray, twin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A pixel 5-20 px outside `target` (bool [H, W]) and not on `twin`: where a rough pointing gesture lands."""
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(~target)
    ys, xs = np.nonzero((d >= 5) & (d <= 20) & ~twin)
    k = int(rng.integers(len(ys)))
    return np.array([xs[k] + 0.5, ys[k] + 0.5], np.float32)


def evaluate_hints(predictor: Any, n: int = 40, seed: int = 11, progress: bool = False) -> dict[str, Any]:
    """Top-1 accuracies of the four request kinds (module docstring) over `n` look-alike scenes."""
    from tqdm import tqdm

    hits = {"point_on": 0, "phrase_only": 0, "point_near": 0, "this_click": 0}
    total = 0
    rng = np.random.default_rng([seed, 5])
    for frame, tid, wid in tqdm(lookalike_frames(n, seed), total=n, desc="look-alikes", disable=not progress):
        target, twin = frame.panoptic == tid, frame.panoptic == wid
        seg = next(s for s in frame.segments if s.id == tid)
        phrase = f"the {seg.colour} {seg.shape}"
        on = np.asarray(click_point(target), np.float32).reshape(1, 2)
        near = near_point(target, twin, rng).reshape(1, 2)
        predictor.set_image(frame.rgb)
        total += 1
        for key, query, pts in (("point_on", phrase, on), ("phrase_only", phrase, None), ("point_near", phrase, near),
                                ("this_click", "this", on)):
            res = predictor.text(query, max_results=1, hint_points=pts)
            hits[key] += int(bool(len(res)) and mask_iou(res.masks[0], target) >= 0.5)
    return {"scenes": total, **{f"top1_{k}": v / total if total else float("nan") for k, v in hits.items()}}


__all__ = ["lookalike_frames", "edited_frames", "evaluate_hints", "near_point", "add_copy"]
