"""PQ / SQ / RQ against hand-computed cases and against torchmetrics' PanopticQuality on random cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from omg_seg_core.eval.panoptic_quality import (PanopticEvaluator, PanopticFrame, panoptic_from_labels,
                                                panoptic_from_segments)
from omg_seg_core.structures import SEMANTIC_IGNORE, Segments

NAMES = ["thing", "stuff"]
IS_THING = [True, False]


def frame(ids: np.ndarray, cats: dict[int, int], crowd: set[int] = frozenset()) -> PanopticFrame:
    return PanopticFrame(ids.astype(np.int32), dict(cats), set(crowd))


def test_identical_gives_one() -> None:
    ids = np.zeros((10, 10), np.int32)
    ids[:5, :5], ids[:5, 5:], ids[5:] = 1, 2, 3
    f = frame(ids, {1: 0, 2: 0, 3: 1})
    ev = PanopticEvaluator(NAMES, IS_THING)
    st = ev.process(f, f)
    r = ev.evaluate()
    assert (st.tp, st.fp, st.fn) == (3, 0, 0)
    for k in ("all", "things", "stuff"):
        assert r[k]["pq"] == pytest.approx(1.0) and r[k]["sq"] == pytest.approx(1.0) and r[k]["rq"] == 1.0


def test_hand_computed_partial_overlaps() -> None:
    # 10x10 image. GT: thing inst 1 = rows 0-4 x cols 0-4 (25 px), thing inst 2 = rows 0-4 x cols 5-9 (25 px),
    # stuff = rows 5-9 (50 px).
    gt = np.zeros((10, 10), np.int32)
    gt[:5, :5], gt[:5, 5:], gt[5:] = 1, 2, 3
    # Pred: a = thing rows 0-4 x cols 0-3 (20 px): inter 20 with inst 1, union 25 -> IoU 0.8 -> TP.
    #       b = thing rows 0-1 x cols 4-9 (12 px): inter 10 with inst 2, union 25+12-10 = 27 -> IoU 0.37 -> no match:
    #           b is a FP, inst 2 a FN (b vs inst 1: inter 2, IoU 2/35).
    #       s = stuff rows 2-4 x cols 4-9 (18 px) + rows 5-9 (50 px) = 68 px: inter 50, union 68 -> IoU 0.73529 TP.
    pred = np.zeros((10, 10), np.int32)
    pred[:5, :4] = 1
    pred[:2, 4:] = 2
    pred[2:5, 4:] = 3
    pred[5:] = 3
    ev = PanopticEvaluator(NAMES, IS_THING)
    st = ev.process(frame(pred, {1: 0, 2: 0, 3: 1}), frame(gt, {1: 0, 2: 0, 3: 1}))
    assert (st.tp, st.fp, st.fn) == (2, 1, 1)
    r = ev.evaluate()
    # thing: SQ = 0.8, RQ = 1 / (1 + 0.5 + 0.5) = 0.5, PQ = 0.4.   stuff: SQ = PQ = 50/68, RQ = 1.
    thing, stuff = r["per_class"]["thing"], r["per_class"]["stuff"]
    assert (thing["tp"], thing["fp"], thing["fn"]) == (1, 1, 1)
    assert thing["sq"] == pytest.approx(0.8) and thing["rq"] == pytest.approx(0.5) and thing["pq"] == pytest.approx(0.4)
    assert stuff["pq"] == pytest.approx(50 / 68) and stuff["rq"] == 1.0
    # all = mean over the two classes: PQ (0.4 + 50/68) / 2, SQ (0.8 + 50/68) / 2, RQ (0.5 + 1) / 2.
    assert r["all"]["pq"] == pytest.approx((0.4 + 50 / 68) / 2)
    assert r["all"]["sq"] == pytest.approx((0.8 + 50 / 68) / 2)
    assert r["all"]["rq"] == pytest.approx(0.75)
    assert r["things"]["pq"] == pytest.approx(0.4) and r["stuff"]["pq"] == pytest.approx(50 / 68)


def test_void_is_excluded_from_union_and_false_positives() -> None:
    # GT: thing rows 0-4 x cols 0-4 (25 px), everything else void (id 0).
    gt = np.zeros((10, 10), np.int32)
    gt[:5, :5] = 1
    # Pred 1: rows 0-4 x cols 0-7 (40 px), 15 px on void: union = 40 + 25 - 25 - 15 = 25 -> IoU 1.0 (TP).
    # Pred 2: rows 6-9 (40 px), all on void -> more than half void -> ignored (not a FP).
    # Pred 3: rows 5 x cols 0-9 (10 px) -> 10 px void -> ignored too.
    pred = np.zeros((10, 10), np.int32)
    pred[:5, :8] = 1
    pred[6:] = 2
    pred[5] = 3
    ev = PanopticEvaluator(NAMES, IS_THING)
    st = ev.process(frame(pred, {1: 0, 2: 0, 3: 0}), frame(gt, {1: 0}))
    assert (st.tp, st.fp, st.fn) == (1, 0, 0)
    assert ev.evaluate()["all"]["pq"] == pytest.approx(1.0)


def test_crowd_regions_are_ignored() -> None:
    # Label images: semantic thing (0) everywhere, instance 1 on rows 0-4 x cols 0-4, instance 0 (crowd) rows 5-9.
    sem = np.full((10, 10), SEMANTIC_IGNORE, np.uint16)
    inst = np.zeros((10, 10), np.uint16)
    sem[:5, :5], inst[:5, :5] = 0, 1
    sem[5:] = 0
    gt = panoptic_from_labels(sem, inst, thing_classes=[0])
    assert len(gt.crowd) == 1 and sorted(gt.categories.values()) == [0, 0]
    # Pred: exact instance 1 (TP) + a thing on rows 5-9 x cols 0-3 (20 px), all inside the crowd -> ignored.
    pred = np.zeros((10, 10), np.int32)
    pred[:5, :5] = 1
    pred[5:, :4] = 2
    ev = PanopticEvaluator(NAMES, IS_THING)
    st = ev.process(frame(pred, {1: 0, 2: 0}), gt)
    assert (st.tp, st.fp, st.fn) == (1, 0, 0)
    # Same prediction but the region is a real instance 2 (50 px): pred 2 has IoU 20/50 = 0.4 -> FP + FN,
    # thing: TP 1 (IoU 1), FP 1, FN 1 -> SQ 1, RQ 0.5, PQ 0.5.
    inst[5:] = 2
    ev2 = PanopticEvaluator(NAMES, IS_THING)
    ev2.process(frame(pred, {1: 0, 2: 0}), panoptic_from_labels(sem, inst, thing_classes=[0]))
    assert ev2.evaluate()["per_class"]["thing"]["pq"] == pytest.approx(0.5)


def test_accumulates_over_images_and_state_round_trip() -> None:
    # Image 1: one exact thing match (TP, IoU 1). Image 2: thing predicted as stuff -> thing FN, stuff FP.
    a = np.ones((4, 4), np.int32)
    ev = PanopticEvaluator(NAMES, IS_THING)
    ev.process(frame(a, {1: 0}), frame(a, {1: 0}))
    state = ev.state_dict()
    ev2 = PanopticEvaluator(NAMES, IS_THING)
    ev2.load_state_dict(state)
    for e in (ev, ev2):
        e.process(frame(a, {1: 1}), frame(a, {1: 0}))
        r = e.evaluate()
        # thing: TP 1, FN 1 -> RQ = 1 / 1.5, PQ = 2/3; stuff: FP 1 -> PQ 0; all = 1/3.
        assert r["per_class"]["thing"]["pq"] == pytest.approx(2 / 3)
        assert r["per_class"]["stuff"]["pq"] == 0.0
        assert r["all"]["pq"] == pytest.approx(1 / 3) and r["num_images"] == 2


def test_from_segments_and_bad_input() -> None:
    masks = np.zeros((2, 6, 6), bool)
    masks[0, :3], masks[1, 3:] = True, True
    segs = Segments(masks, [0.9, 0.8], [0, 1], ["thing", "stuff"], [True, False])
    f = panoptic_from_segments(segs)
    assert f.categories == {1: 0, 2: 1} and (f.ids[:3] == 1).all() and (f.ids[3:] == 2).all()
    ev = PanopticEvaluator(NAMES, IS_THING)
    with pytest.raises(ValueError, match="differ in size"):
        ev.process(f, frame(np.zeros((5, 6), np.int32), {}))
    with pytest.raises(ValueError, match=r"category id\(s\) \[7\]"):
        ev.process(frame(f.ids, {1: 7, 2: 1}), f)


def _random_case(rng: np.random.Generator, things: list[int], stuffs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(cat, inst) maps [H, W, 2] for target (with void = -1 category) and a perturbed, void-free prediction."""
    h, w, cell = 24, 32, 4
    cats = np.array(things + stuffs)
    grid_c = rng.choice(cats, size=(h // cell, w // cell))
    grid_i = rng.integers(1, 4, size=grid_c.shape)
    tc = np.kron(grid_c, np.ones((cell, cell), int))
    ti = np.kron(grid_i, np.ones((cell, cell), int))
    ti[np.isin(tc, stuffs)] = 0
    pc, pi = tc.copy(), ti.copy()
    # Perturb: relabel random pixels / blocks so some segments match with IoU < 1 and some fail to match.
    noise = rng.random((h, w)) < 0.15
    pc[noise] = rng.choice(cats, size=noise.sum())
    pi[noise] = rng.integers(1, 4, size=noise.sum())
    pi[np.isin(pc, stuffs)] = 0
    void = rng.random((h // cell, w // cell)) < 0.15
    tc = np.where(np.kron(void, np.ones((cell, cell), bool)), -1, tc)
    return np.stack([tc, ti], -1), np.stack([pc, pi], -1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_torchmetrics_on_random_cases(seed: int) -> None:
    from torchmetrics.detection import PanopticQuality

    rng = np.random.default_rng(seed)
    things, stuffs = [0, 1, 2], [3, 4]
    names = [f"c{i}" for i in range(5)]
    tm = PanopticQuality(things=set(things), stuffs=set(stuffs), return_sq_and_rq=True, return_per_class=True)
    ev = PanopticEvaluator(names, [c in things for c in range(5)])
    for _ in range(6):
        target, pred = _random_case(rng, things, stuffs)
        # torchmetrics maps unknown target categories to void; use 99 for our -1.
        t_tm = np.where(target == -1, 99, target)
        tm.update(torch.from_numpy(pred[None]), torch.from_numpy(t_tm[None]))
        sem = np.where(target[..., 0] < 0, SEMANTIC_IGNORE, target[..., 0]).astype(np.uint16)
        gt_f = panoptic_from_labels(sem, target[..., 1].astype(np.uint16), things)
        pr_f = panoptic_from_labels(pred[..., 0].astype(np.uint16), pred[..., 1].astype(np.uint16), things)
        ev.process(pr_f, gt_f)
    ref = tm.compute()  # [C, 3] per class: pq, sq, rq
    ours = ev.evaluate()
    assert ev.tp.sum() > 0 and ev.fp.sum() > 0 and ev.fn.sum() > 0  # the cases exercise all three counts
    for c, name in enumerate(names):
        got = ours["per_class"].get(name, {"pq": 0.0, "sq": 0.0, "rq": 0.0})
        assert [got["pq"], got["sq"], got["rq"]] == pytest.approx(ref[c].tolist(), abs=1e-6)  # ref: [C, 3]
    tm_all = PanopticQuality(things=set(things), stuffs=set(stuffs))
    rng = np.random.default_rng(seed)
    for _ in range(6):
        target, pred = _random_case(rng, things, stuffs)
        tm_all.update(torch.from_numpy(pred[None]), torch.from_numpy(np.where(target == -1, 99, target)[None]))
    assert ours["all"]["pq"] == pytest.approx(float(tm_all.compute()), abs=1e-6)
