"""Evaluators merge their accumulators: frames split over several evaluations and merged give exactly (==, not
approx) what one evaluation fed every frame gives; the base of `omg-seg-eval-fleet`'s merged report."""
from __future__ import annotations

import pickle

import numpy as np

from omg_seg_core.eval.panoptic_quality import ExactSum, PanopticEvaluator
from omg_seg_core.eval.runner import Evaluation, GroundTruth
from omg_seg_core.eval.mot import VideoEvaluator
from omg_seg_core.eval.stq import STQEvaluator, track_id_map
from omg_seg_core.structures import Segments

NAMES, THING = ["cup", "box", "table", "floor"], [True, True, False, False]


def _frame(rng: np.random.Generator) -> tuple[GroundTruth, Segments]:
    """A ground truth of blocks and a jittered prediction of it (some classes/ids flipped)."""
    h, w = 24, 32
    sem = np.full((h, w), 3, np.uint16)
    sem[:, : w // 2] = 2
    inst = np.zeros((h, w), np.uint16)
    for k in range(1, 4):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        sem[y:y + 7, x:x + 7] = k % 2
        inst[y:y + 7, x:x + 7] = k
    masks, cls, tids = [], [], []
    for c in range(4):
        for i in (np.unique(inst[sem == c]) if THING[c] else [0]):
            m = (sem == c) & (inst == i)
            if m.any():
                shift = int(rng.integers(-2, 3))
                masks.append(np.roll(m, shift, axis=1))
                cls.append(c if rng.random() > 0.15 else (c + 1) % 4)
                tids.append(int(i) if THING[cls[-1]] else 0)
    pred = Segments(np.stack(masks), rng.random(len(masks)), cls, [NAMES[c] for c in cls],
                    [THING[c] for c in cls], track_ids=tids, task="panoptic")
    return GroundTruth(sem, inst), pred


def _feed(ev: Evaluation, video: VideoEvaluator, stq: STQEvaluator, frames: list) -> None:
    from omg_seg_core.eval.runner import segments_from_gt

    video.start_sequence()
    stq.start_sequence()
    for i, (gt, pred) in enumerate(frames):
        image = np.zeros((*gt.shape, 3), np.uint8)
        ev.process({"index": i}, image, gt, panoptic=pred, instances=pred, semantic=pred,
                   timings={"total": float(i)})
        g = segments_from_gt(gt, NAMES, THING)
        video.process(g.select(~g.is_thing | (g.track_ids > 0)), pred)
        stq.process(gt.semantic, gt.instance_ids, pred.semantic_map(), track_id_map(pred))


def _new() -> tuple[Evaluation, VideoEvaluator, STQEvaluator]:
    return Evaluation(NAMES, THING, worst_k=3), VideoEvaluator(NAMES, THING), STQEvaluator(NAMES, THING)


def test_split_and_merged_equals_one_evaluation() -> None:
    rng = np.random.default_rng(3)
    parts = [[_frame(rng) for _ in range(n)] for n in (5, 2, 4)]
    one = _new()
    for part in parts:
        _feed(*one, part)
    merged = None
    for part in parts:
        ev = _new()
        _feed(*ev, part)
        ev = pickle.loads(pickle.dumps(ev))  # as a Ray worker would return it
        if merged is None:
            merged = ev
        else:
            for mine, theirs in zip(merged, ev):
                mine.merge(theirs)
    a, b = one[0].evaluate(), merged[0].evaluate()
    assert repr(a) == repr(b)  # repr: nan == nan, and every float bit for bit
    assert repr(one[1].evaluate()) == repr(merged[1].evaluate())
    assert repr(one[2].evaluate()) == repr(merged[2].evaluate())
    assert one[0].frames == merged[0].frames
    assert [w["index"] for w in one[0].worst_frames()] == [w["index"] for w in merged[0].worst_frames()]
    assert a["panoptic"]["all"]["n"] > 0 and a["mask_ap"]["num_gt"] > 0


def test_exact_sum_is_order_independent() -> None:
    xs = list(np.random.default_rng(0).random(1000) * 1e-3) + [1e8, -1e8, 0.1]
    whole = ExactSum(xs)
    left, right = ExactSum(xs[:317]), ExactSum(xs[317:])
    left.merge(right)
    assert whole.value == left.value == ExactSum(reversed(xs)).value


def test_old_pickled_panoptic_state_still_loads() -> None:
    ev = PanopticEvaluator(NAMES, THING)
    state = ev.__dict__.copy()
    state.pop("iou_sums")
    state["iou_sum"] = np.array([0.5, 0.0, 1.25, 0.0])
    old = PanopticEvaluator.__new__(PanopticEvaluator)
    old.__setstate__(state)
    assert old.iou_sum.tolist() == [0.5, 0.0, 1.25, 0.0]
