"""Video metrics on hand-computed cases (IDF1 / HOTA / IDSW via trackeval, VPQ, target hit rate)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from omg_seg_core.eval.mot import VideoEvaluator, VideoFrame
from omg_seg_core.structures import mask_iou_matrix

H, W = 20, 40
NAMES, THING = ["box", "ball", "floor"], [True, True, False]


def rect(x, y, w, h):
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


def vf(items):
    """items: (mask, id, class) with class 2 = stuff."""
    if not items:
        return VideoFrame(np.zeros((0, H, W), bool), [], [], [])
    return VideoFrame(np.stack([i[0] for i in items]), [i[1] for i in items], [i[2] for i in items],
                      [THING[i[2]] for i in items])


def evaluator(windows=(1, 2)):
    ev = VideoEvaluator(NAMES, THING, windows=windows)
    ev.start_sequence()
    return ev


def test_perfect_tracking_scores_one():
    ev = evaluator()
    for t in range(4):
        g = vf([(rect(2 + t, 2, 5, 5), 7, 0), (rect(20, 5, 6, 6), 9, 1), (rect(0, 15, 40, 5), 0, 2)])
        p = vf([(rect(2 + t, 2, 5, 5), 1, 0), (rect(20, 5, 6, 6), 2, 1), (rect(0, 15, 40, 5), 50002, 2)])
        ev.process(g, p)
    r = ev.evaluate()
    assert r["IDF1"] == pytest.approx(1.0) and r["HOTA"] == pytest.approx(1.0) and r["IDSW"] == 0
    assert r["vpq"] == pytest.approx(1.0) and r["frames"] == 4 and r["gt_tracks"] == 2


def test_one_id_switch_hand_computed():
    # One object over 4 frames with exact masks; the tracker changes its id after frame 1.
    ev = evaluator(windows=(1, 2))
    for t in range(4):
        m = rect(2 + 3 * t, 2, 6, 6)
        ev.process(vf([(m, 5, 0)]), vf([(m, 1 if t < 2 else 2, 0)]))
    r = ev.evaluate()
    # IDF1: best identity match covers 2 of 4 frames: IDTP=2, IDFN=2, IDFP=2 -> 4 / 8.
    assert r["IDF1"] == pytest.approx(0.5)
    assert r["IDSW"] == 1 and r["IDSW_per_100_frames"] == pytest.approx(25.0)
    # HOTA: DetA = 1; each TP's association score = 2 / (2 + 2 + 0) -> AssA 0.5, HOTA sqrt(0.5).
    assert r["DetA"] == pytest.approx(1.0) and r["AssA"] == pytest.approx(0.5)
    assert r["HOTA"] == pytest.approx(math.sqrt(0.5))
    # VPQ^1 = 1. VPQ^2: windows (0,1),(2,3) match with IoU 1; window (1,2): GT tube 72 px vs two 36-px
    # predicted tubes, IoU 0.5 is not > 0.5 -> 1 FN + 2 FP.  PQ = 2 / (2 + 1 + 0.5) = 4/7.
    assert r["per_window"][1]["vpq"] == pytest.approx(1.0)
    assert r["per_window"][2]["vpq"] == pytest.approx(4 / 7)
    assert r["vpq"] == pytest.approx((1 + 4 / 7) / 2)


def test_vpq_partial_overlap_wrong_class_and_void():
    ev = evaluator(windows=(1,))
    g = vf([(rect(0, 0, 10, 10), 1, 0), (rect(20, 0, 10, 10), 2, 1)])  # rest of the image is void
    p = vf([(rect(0, 0, 10, 8), 1, 0),          # box IoU 80/100 = 0.8 -> TP
            (rect(20, 0, 10, 10), 2, 0),        # right place, wrong class -> FP (box) and FN (ball)
            (rect(32, 12, 6, 6), 3, 1)])        # entirely on void -> ignored, not FP
    ev.process(g, p)
    r = ev.vpq()
    # box: TP 1 (0.8) + FP 1 -> 0.8 / 1.5; ball: FN 1 -> 0.  mean = (0.5333 + 0) / 2
    assert r["per_window"][1]["things"] == pytest.approx((0.8 / 1.5 + 0.0) / 2)
    assert math.isnan(r["vpq_stuff"])


def test_void_part_of_prediction_leaves_union():
    # Prediction 10x10 of which 4x10 lie on void: union = 100 + 60 - 60 - 40 = 60 -> IoU 1.
    ev = evaluator(windows=(1,))
    ev.process(vf([(rect(0, 0, 6, 10), 1, 0)]), vf([(rect(0, 0, 10, 10), 4, 0)]))
    r = ev.vpq()
    assert r["vpq"] == pytest.approx(1.0)


def test_untracked_predictions_not_tracker_outputs_and_split_tubes():
    ev = evaluator(windows=(1, 2))
    m = rect(5, 5, 6, 6)
    for _ in range(2):
        ev.process(vf([(m, 1, 0)]), vf([(m, 0, 0)]))
    r = ev.evaluate()
    assert r["IDF1"] == pytest.approx(0.0) and r["pred_tracks"] == 0
    assert r["per_window"][1]["vpq"] == pytest.approx(1.0)
    # k=2: two one-frame predicted tubes of 36 px vs a 72-px GT tube: IoU 0.5 -> no match.
    assert r["per_window"][2]["vpq"] == pytest.approx(0.0)


def test_target_hit_fraction_counts_visible_frames_only():
    ev = evaluator()
    gt = rect(0, 0, 10, 10)
    assert ev.process_target(gt, rect(0, 0, 10, 10)) == pytest.approx(1.0)
    assert ev.process_target(gt, rect(0, 0, 10, 4)) == pytest.approx(0.4)
    assert ev.process_target(gt, None) == 0.0
    assert ev.process_target(None, rect(0, 0, 3, 3)) is None  # invisible: not counted
    assert ev.process_target(np.zeros((H, W), bool), None) is None
    assert ev.targets() == {"target_visible_frames": 3, "target_iou50_fraction": pytest.approx(1 / 3)}


def test_multiple_sequences_combine_and_mask_iou():
    ev = VideoEvaluator(NAMES, THING, windows=(1,))
    for perfect in (True, False):
        ev.start_sequence()
        for t in range(2):
            m = rect(2, 2, 5, 5)
            ev.process(vf([(m, 1, 0)]), vf([(m, 1 if perfect else t + 1, 0)]))
    r = ev.tracking()
    assert r["frames"] == 4 and r["IDSW"] == 1
    # IDTP = 2 (first sequence) + 1 (second: each id covers one frame); 4 GT and 4 predicted detections.
    assert r["IDF1"] == pytest.approx(0.75)
    iou = mask_iou_matrix(np.stack([rect(0, 0, 4, 4)]), np.stack([rect(2, 0, 4, 4), rect(30, 0, 2, 2)]))
    assert iou[0, 0] == pytest.approx(8 / 24) and iou[0, 1] == 0


def test_bad_input():
    with pytest.raises(ValueError, match="thing flags"):
        VideoEvaluator(["a"], [True, False])
    with pytest.raises(ValueError, match="window"):
        VideoEvaluator(NAMES, THING, windows=(0,))
    ev = VideoEvaluator(NAMES, THING)
    with pytest.raises(RuntimeError, match="start_sequence"):
        ev.process(vf([]), vf([]))
    ev.start_sequence()
    with pytest.raises(ValueError, match="class id"):
        ev.process(vf([(rect(0, 0, 2, 2), 1, 0)]), VideoFrame(rect(0, 0, 2, 2)[None], [1], [7], [True]))
    with pytest.raises(ValueError, match="track ids"):
        ev.process(vf([(rect(0, 0, 2, 2), 0, 0)]), vf([]))


def test_pickled_evaluator_gives_the_same_result():
    import pickle

    ev = evaluator()
    m = rect(2, 2, 5, 5)
    ev.process(vf([(m, 1, 0)]), vf([(m, 3, 0)]))
    clone = pickle.loads(pickle.dumps(ev))
    for e in (ev, clone):
        e.process(vf([(m, 1, 0)]), vf([(m, 4, 0)]))
    np.testing.assert_equal(clone.evaluate(), ev.evaluate())  # (nan == nan for the empty stuff class)
