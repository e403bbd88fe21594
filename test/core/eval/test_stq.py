"""STQ on hand-computed cases (deeplab2 semantics, see omg_seg_core/eval/stq.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from omg_seg_core.eval.stq import STQEvaluator

IGN = 65535


def row(*v: int) -> np.ndarray:
    return np.array([v], np.int64)


def test_split_track_hand_value() -> None:
    # Two 1x4 frames; class 0 = thing, class 1 = stuff. GT: thing track 1 on pixels 0-1 in both frames (|g| = 4),
    # stuff on pixels 2-3. Pred: track A on 0-1 in frame 1, only pixel 0 in frame 2; track B on pixel 1 in frame 2.
    # A: TPA 3, |A| 3 -> IoU 3/4 -> 3 * 3/4 = 2.25. B: TPA 1, |B| 1 -> IoU 1/4 -> 0.25. AQ = (2.25 + 0.25) / 4 = 0.625.
    # Semantic is exact -> SQ = 1. STQ = sqrt(0.625).
    ev = STQEvaluator(["thing", "stuff"], [True, False])
    ev.start_sequence()
    sem = row(0, 0, 1, 1)
    ev.process(sem, row(1, 1, 0, 0), sem, row(7, 7, 0, 0))
    ev.process(sem, row(1, 1, 0, 0), sem, row(7, 8, 0, 0))
    r = ev.evaluate()
    assert r["aq"] == pytest.approx(0.625) and r["sq"] == 1.0 and r["stq"] == pytest.approx(math.sqrt(0.625))


def test_identical_is_one_and_void_crowd_are_ignored() -> None:
    ev = STQEvaluator(["thing", "stuff"], [True, False])
    ev.start_sequence()
    sem, inst = row(0, 0, 0, 1), row(3, 3, 0, 0)  # pixel 2: thing with instance 0 = crowd
    # The prediction extends track 3 over the crowd pixel: ignored, so AQ stays 1.
    ev.process(sem, inst, sem, row(3, 3, 3, 0))
    assert ev.evaluate()["aq"] == 1.0
    # Same on a void pixel; semantic on void is not counted either.
    ev2 = STQEvaluator(["thing", "stuff"], [True, False])
    ev2.start_sequence()
    ev2.process(row(0, 0, IGN, 1), row(3, 3, 0, 0), row(0, 0, 0, 1), row(3, 3, 3, 0))
    r = ev2.evaluate()
    assert r["aq"] == 1.0 and r["sq"] == 1.0 and r["stq"] == 1.0


def test_sequences_are_separate_and_ids_restart() -> None:
    # Sequence 1: GT track 1 predicted as id 5 (2 px, exact) -> contribution 1. Sequence 2: GT track 1 (2 px)
    # predicted as id 5 on one pixel only: TPA 1, |p| 1, |g| 2 -> IoU 1/2 -> 1 * 1/2 / 2 = 0.25.
    # AQ = (1 + 0.25) / 2 GT tracks = 0.625 (the same ids in two sequences are different tracks).
    ev = STQEvaluator(["thing"], [True])
    ev.start_sequence()
    ev.process(row(0, 0), row(1, 1), row(0, 0), row(5, 5))
    ev.start_sequence()
    ev.process(row(0, 0), row(1, 1), row(0, 0), row(5, 0))
    assert ev.evaluate()["aq"] == pytest.approx(0.625) and ev.evaluate()["gt_tracks"] == 2
    with pytest.raises(ValueError, match="differ in size"):
        ev.process(row(0, 0), row(1, 1), row(0), row(5))
