"""recover_missed: confirmed tracks the frame's segments missed are re-found among the frame's lower-scored
instance results or with a box prompt (tracking/recovery.py).

Runs the shipped small model on a held-out generated scene: the "miss" is made by deleting one thing segment
from the model's own panoptic output, so the prompt has a real object to find (or, with the object painted
over, none).
"""
from __future__ import annotations

import numpy as np
import pytest

from omg_seg_core.config import default_checkpoint_path
from omg_seg_core.tracking import Tracker, TrackerConfig, recover_missed

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def scene():
    from omg_seg_core.data.synth import world
    from omg_seg_core.predict import build_predictor
    from omg_seg_core.train.synth_eval import heldout_frames

    pred = build_predictor(str(default_checkpoint_path()), vocabulary=world.vocabulary_path())
    frame = heldout_frames(1, seed=5)[0]
    pred.set_image(frame.rgb)
    pan = pred.panoptic()
    things = np.flatnonzero(pan.is_thing)
    assert things.size >= 2, "the scene needs two things"
    victim = int(things[np.argmax(pan.areas()[things])])  # the largest thing is the one the frame will miss
    return pred, frame, pan, victim


def _tracked_then_missed(pred, rgb, pan, victim, cfg=TrackerConfig()):
    """Two full frames (tracks confirmed), then a frame whose segments lack `victim`."""
    tracker = Tracker(cfg)
    for _ in range(2):
        out = tracker.update(pan)
    victim_id = int(out.track_ids[victim])
    assert victim_id > 0
    pred.set_image(rgb)
    missed = tracker.update(pan.select([i for i in range(len(pan)) if i != victim]))
    return tracker, missed, victim_id


def test_a_missed_object_is_refound_with_its_id_and_the_partition_kept(scene):
    pred, frame, pan, victim = scene
    tracker, missed, vid = _tracked_then_missed(pred, frame.rgb, pan, victim)
    last_frames = {t.track_id: t.last_frame for t in tracker.tracks}
    out = recover_missed(tracker, missed, pred)
    assert out.extra["recovered_ids"] == [vid]
    row = int(np.flatnonzero(out.track_ids == vid)[0])
    assert row == len(missed) and out.is_thing[row] and out.class_ids[row] == pan.class_ids[victim]
    inter = (out.masks[row] & pan.masks[victim]).sum()
    assert inter / (out.masks[row] | pan.masks[victim]).sum() >= 0.7       # the same object
    assert out.masks.sum(0).max() == 1                                     # no pixel in two segments
    np.testing.assert_array_equal(out.masks[:len(missed)][missed.is_thing], missed.masks[missed.is_thing])
    ids = out.extra["panoptic_ids"]
    assert len(ids) == len(out) and len(set(ids.tolist())) == len(out)
    np.testing.assert_array_equal(out.boxes[row], out.select([row]).boxes[0])
    assert out.embeddings is not None and out.embeddings.shape == (len(out), missed.embeddings.shape[1])
    assert {t.track_id: t.last_frame for t in tracker.tracks} == last_frames   # tracker state untouched


def test_the_instance_results_are_tried_first_and_the_prompt_alone_still_finds_it(scene):
    pred, frame, pan, victim = scene
    pred.set_image(frame.rgb)
    cands = pred.instances(min_score=TrackerConfig().recover_min_score)
    tracker, missed, vid = _tracked_then_missed(pred, frame.rgb, pan, victim)
    out = recover_missed(tracker, missed, pred)
    row = int(np.flatnonzero(out.track_ids == vid)[0])
    # the recovered row is one of the frame's instance results (its score, its mask less the frame's things)
    k = int(np.argmin(np.abs(cands.scores - out.scores[row])))
    assert cands.scores[k] == pytest.approx(out.scores[row])
    taken = missed.masks[missed.is_thing].any(0)
    np.testing.assert_array_equal(out.masks[row], cands.masks[k] & ~taken)
    # with the instance stage skipped, the box prompt finds the same object
    tracker, missed, vid = _tracked_then_missed(pred, frame.rgb, pan, victim, TrackerConfig(recover_min_score=1.5))
    alone = recover_missed(tracker, missed, pred)
    assert alone.extra["recovered_ids"] == [vid]
    a = alone.masks[int(np.flatnonzero(alone.track_ids == vid)[0])]
    assert (a & out.masks[row]).sum() / (a | out.masks[row]).sum() >= 0.7


def test_instances_min_score_keeps_exactly_the_results_above_it(scene):
    pred, frame, _, _ = scene
    pred.set_image(frame.rgb)
    every, some = pred.instances(), pred.instances(min_score=0.3)
    keep = every.scores >= 0.3
    assert 0 < len(some) < len(every) and len(some) == keep.sum()
    np.testing.assert_array_equal(some.masks, every.masks[keep])
    np.testing.assert_array_equal(some.query_index, every.query_index[keep])


def test_instances_near_keeps_the_queries_reaching_into_the_boxes(scene):
    pred, frame, pan, victim = scene
    pred.set_image(frame.rgb)
    every = pred.instances(min_score=0.2)
    box = pan.boxes[victim].astype(np.float32)
    some = pred.instances(min_score=0.2, near=box[None])
    assert 0 < len(some) < len(every)

    def rows(seg):
        return {(int(q), round(float(s), 6), int(m.sum())) for q, s, m in zip(seg.query_index, seg.scores, seg.masks)}
    assert rows(some) <= rows(every)                                        # the same results, fewer of them
    iou = [(m & pan.masks[victim]).sum() / (m | pan.masks[victim]).sum() for m in some.masks]
    assert max(iou) >= 0.7                                                   # the object in the box is there
    x0, y0, x1, y1 = (box + np.array([-8, -8, 8, 8])).clip(0).astype(int)   # a 1/4-grid cell is 4 px here
    assert all(m[y0:y1, x0:x1].any() for m in some.masks)
    assert len(pred.instances(min_score=0.2, near=np.zeros((0, 4), np.float32))) == 0


def test_a_frame_without_segments_gets_its_objects_back(scene):
    pred, frame, pan, _ = scene
    tracker = Tracker()
    for _ in range(2):
        tracker.update(pan)
    pred.set_image(frame.rgb)
    empty = tracker.update(pan.select([]))
    out = recover_missed(tracker, empty, pred)
    assert len(out.extra["recovered_ids"]) >= 2 and len(out) == len(out.extra["recovered_ids"])
    assert out.masks.sum(0).max() == 1 and out.is_thing.all() and (out.track_ids > 0).all()


def test_nothing_is_recovered_where_the_object_is_gone(scene):
    pred, frame, pan, victim = scene
    rgb = frame.rgb.copy()
    ys, xs = np.nonzero(pan.masks[victim])
    x0, x1 = xs.min(), xs.max() + 1
    y0, y1 = ys.min(), ys.max() + 1
    # paint the object over with the colours just left of its box (what was behind it, roughly)
    rgb[y0:y1, x0:x1] = rgb[y0:y1, max(x0 - 1, 0)][:, None]
    tracker, missed, vid = _tracked_then_missed(pred, rgb, pan, victim)
    out = recover_missed(tracker, missed, pred)
    assert vid not in out.extra["recovered_ids"]
    assert len(out) == len(missed)


def test_recovery_off_or_without_predictor_leaves_the_frame_alone(scene):
    pred, frame, pan, victim = scene
    for cfg, p in ((TrackerConfig(recover_max_gap=0), pred), (TrackerConfig(), None)):
        tracker, missed, _ = _tracked_then_missed(pred, frame.rgb, pan, victim, cfg)
        out = recover_missed(tracker, missed, p)
        assert out.extra["recovered_ids"] == [] and len(out) == len(missed)
        np.testing.assert_array_equal(out.masks, missed.masks)


@pytest.mark.parametrize("name, value", [("recover_max_gap", -1), ("recover_max_gap", 1.5),
                                         ("recover_min_iou", 1.2), ("recover_max_overlap", float("nan")),
                                         ("recover_box_expand", -0.1), ("recover_min_score", -0.2),
                                         ("recover_min_score", float("nan"))])
def test_bad_recovery_settings_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        TrackerConfig(**{name: value})
