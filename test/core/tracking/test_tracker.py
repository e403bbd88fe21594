"""Tracker: association, life cycle, re-identification, stuff ids, resets and bad input."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from omg_seg_core.structures import Segments
from omg_seg_core.tracking import CONFIRMED, TENTATIVE, Tracker, TrackerConfig
from tracking_scenes import embeddings, frame

E = embeddings(6)


def test_ids_follow_objects_when_segment_order_changes():
    tr = Tracker(TrackerConfig(n_init=1))
    a = (0, 10, 10, 20, 20, E[0])
    b = (0, 100, 60, 20, 20, E[1])
    ids1 = tr.update(frame([a, b])).track_ids
    ids2 = tr.update(frame([b, a])).track_ids  # same objects, reversed order
    assert ids1[0] > 0 and ids1[1] > 0 and ids1[0] != ids1[1]
    assert list(ids2) == [ids1[1], ids1[0]]


def test_tentative_then_confirmed_after_n_init_hits():
    tr = Tracker(TrackerConfig(n_init=3))
    a = (0, 10, 10, 20, 20, E[0])
    seen = [int(tr.update(frame([a])).track_ids[0]) for _ in range(4)]
    assert seen[:2] == [0, 0] and seen[2] > 0 and seen[3] == seen[2]
    assert [t.state for t in tr.tracks] == [CONFIRMED]


def test_single_frame_false_positive_gets_no_id_and_burns_none():
    tr = Tracker(TrackerConfig(n_init=2))
    a = (0, 10, 10, 20, 20, E[0])
    fp = (1, 100, 60, 15, 15, E[1])
    out = tr.update(frame([a, fp]))
    assert list(out.track_ids) == [0, 0]
    assert sorted(t.state for t in tr.tracks) == [TENTATIVE, TENTATIVE]
    out = tr.update(frame([a]))
    assert out.track_ids[0] == 1  # the false positive did not take id 1
    assert len(tr.tracks) == 2    # it may still come back once (tentative_max_age = 1) ...
    tr.update(frame([a]))
    assert len(tr.tracks) == 1    # ... but not after two missed frames
    assert tr.update(frame([a, fp])).track_ids[1] == 0  # a reappearance starts a fresh tentative track


def test_flickering_tentative_track_survives_one_miss():
    tr = Tracker(TrackerConfig(n_init=2, tentative_max_age=1))
    a = (0, 10, 10, 20, 20, E[0])
    tr.update(frame([a]))
    tr.update(frame([]))
    (tid,) = tr.update(frame([a])).track_ids
    assert tid > 0


def test_same_class_same_embedding_disambiguated_by_iou():
    # Identical embeddings (e.g. two equal cups): only the mask overlap can tell them apart.
    tr = Tracker(TrackerConfig(n_init=1))
    first = tr.update(frame([(2, 10, 10, 20, 20, E[0]), (2, 80, 10, 20, 20, E[0])])).track_ids
    moved = tr.update(frame([(2, 84, 12, 20, 20, E[0]), (2, 13, 11, 20, 20, E[0])])).track_ids
    assert list(moved) == [first[1], first[0]]


def test_embedding_links_fast_motion_without_overlap():
    tr = Tracker(TrackerConfig(n_init=1))
    ids = tr.update(frame([(0, 10, 10, 20, 20, E[0]), (0, 10, 80, 20, 20, E[1])])).track_ids
    # Both jump far (no IoU with their last mask) and swap rows: embeddings alone must link them.
    ids2 = tr.update(frame([(0, 120, 80, 20, 20, E[1]), (0, 120, 10, 20, 20, E[0])])).track_ids
    assert list(ids2) == [ids[1], ids[0]]


def test_class_gating_forbids_class_change():
    tr = Tracker(TrackerConfig(n_init=1, class_gating=True))
    (tid,) = tr.update(frame([(0, 10, 10, 20, 20, E[0])])).track_ids
    (tid2,) = tr.update(frame([(1, 10, 10, 20, 20, E[0])])).track_ids  # same place, same embedding, new class
    assert tid2 != tid
    tr = Tracker(TrackerConfig(n_init=1, class_gating=False))
    (tid,) = tr.update(frame([(0, 10, 10, 20, 20, E[0])])).track_ids
    (tid2,) = tr.update(frame([(1, 10, 10, 20, 20, E[0])])).track_ids
    assert tid2 == tid


def test_per_class_gate_overrides_global_threshold():
    # Half-overlapping masks, unrelated embeddings: S is about 0.3 -> matched only under a lenient gate.
    objs1 = [(0, 10, 10, 20, 20, E[0]), (1, 80, 10, 20, 20, E[2])]
    objs2 = [(0, 20, 10, 20, 20, E[1]), (1, 90, 10, 20, 20, E[3])]
    cfg = TrackerConfig(n_init=1, match_threshold=0.9, gate_class_names=["ball"], gate_class_thresholds=[0.1],
                        class_gating=True)
    tr = Tracker(cfg)
    a = tr.update(frame(objs1)).track_ids
    b = tr.update(frame(objs2)).track_ids
    assert b[0] != a[0]  # box: strict global gate -> new track
    assert b[1] == a[1]  # ball: lenient per-class gate -> same track


def test_occlusion_survival_within_max_age():
    tr = Tracker(TrackerConfig(n_init=1, max_age=5, reid_memory_size=0))
    a = (0, 10, 10, 20, 20, E[0])
    (tid,) = tr.update(frame([a])).track_ids
    for _ in range(5):
        tr.update(frame([]))
    assert tr.confirmed_ids == [tid]
    (back,) = tr.update(frame([(0, 40, 20, 20, 20, E[0])])).track_ids  # reappears elsewhere
    assert back == tid


def test_removed_after_max_age_and_new_id_without_reid():
    tr = Tracker(TrackerConfig(n_init=1, max_age=3, reid_memory_size=0))
    a = (0, 10, 10, 20, 20, E[0])
    (tid,) = tr.update(frame([a])).track_ids
    for _ in range(4):
        tr.update(frame([]))
    assert tr.tracks == [] and tr.memory_ids == []
    (new,) = tr.update(frame([a])).track_ids
    assert new != tid


def test_reid_after_reentry_revives_old_id_but_not_for_a_stranger():
    tr = Tracker(TrackerConfig(n_init=2, max_age=3, reid_max_age=50, reid_threshold=0.8, class_gating=True))
    a = (0, 10, 10, 20, 20, E[0])
    tr.update(frame([a]))
    (tid,) = tr.update(frame([a])).track_ids
    assert tid > 0
    for _ in range(10):  # exits for longer than max_age
        tr.update(frame([]))
    assert tr.tracks == [] and tr.memory_ids == [tid]
    stranger = (0, 12, 10, 20, 20, E[1])  # same class and place, other embedding: must not take the id
    (sid,) = tr.update(frame([stranger])).track_ids
    assert sid == 0
    noisy = E[0] + 0.1 * embeddings(1, seed=5)[0]
    (back,) = tr.update(frame([(0, 120, 70, 20, 20, noisy)])).track_ids  # re-enters elsewhere
    assert back == tid  # revived immediately as confirmed with its old id
    assert tr.memory_ids == []


def test_reid_memory_expires():
    tr = Tracker(TrackerConfig(n_init=1, max_age=1, reid_max_age=5))
    (tid,) = tr.update(frame([(0, 10, 10, 20, 20, E[0])])).track_ids
    for _ in range(10):
        tr.update(frame([]))
    assert tr.memory_ids == []
    (new,) = tr.update(frame([(0, 10, 10, 20, 20, E[0])])).track_ids
    assert new != tid


def test_stuff_ids_are_class_based_and_stable():
    cfg = TrackerConfig(n_init=1)
    tr = Tracker(cfg)
    out = tr.update(frame([(7, 0, 100, 160, 20, E[3]), (0, 10, 10, 20, 20, E[0]), (9, 0, 0, 160, 8, E[4])]))
    assert out.track_ids[0] == cfg.stuff_id_offset + 7 and out.track_ids[2] == cfg.stuff_id_offset + 9
    out2 = tr.update(frame([(9, 0, 0, 160, 5, E[5]), (7, 0, 90, 160, 30, E[2])]))
    assert list(out2.track_ids) == [cfg.stuff_id_offset + 9, cfg.stuff_id_offset + 7]
    assert 0 < out.track_ids[1] < cfg.stuff_id_offset


def test_iou_only_without_embeddings():
    tr = Tracker(TrackerConfig(n_init=1))
    ids = tr.update(frame([(0, 10, 10, 20, 20, E[0]), (0, 80, 10, 20, 20, E[1])], with_emb=False)).track_ids
    ids2 = tr.update(frame([(0, 82, 10, 20, 20, E[1]), (0, 12, 10, 20, 20, E[0])], with_emb=False)).track_ids
    assert list(ids2) == [ids[1], ids[0]]


def test_low_score_segments_untracked():
    tr = Tracker(TrackerConfig(n_init=1, min_score=0.5))
    out = tr.update(frame([(0, 10, 10, 20, 20, E[0]), (0, 80, 10, 20, 20, E[1])], scores=[0.9, 0.2]))
    assert out.track_ids[0] > 0 and out.track_ids[1] == 0


def test_input_not_modified_and_extra_events_present():
    tr = Tracker(TrackerConfig(n_init=1))
    seg = frame([(0, 10, 10, 20, 20, E[0])])
    out = tr.update(seg)
    assert seg.track_ids[0] == 0 and out.track_ids[0] > 0
    assert out.extra["tracker_events"] == []


@pytest.mark.parametrize("jump", ["size", "stamp", "frame_index"])
def test_jumps_reset_with_warning_and_ids_not_reused(jump, caplog):
    tr = Tracker(TrackerConfig(n_init=1))
    a = (0, 10, 10, 20, 20, E[0])
    for i in range(3):
        (tid,) = tr.update(frame([a]), frame_index=10 + i, stamp=100.0 + i).track_ids
    with caplog.at_level(logging.WARNING, logger="omg_seg_core.tracking.tracker"):
        if jump == "size":
            out = tr.update(frame([a], size=(240, 320)), frame_index=13, stamp=103.0)
        elif jump == "stamp":
            out = tr.update(frame([a]), frame_index=13, stamp=50.0)  # bag loop
        else:
            out = tr.update(frame([a]), frame_index=2, stamp=103.0)
    events = out.extra["tracker_events"]
    assert len(events) == 1 and "reset" in events[0] and tr.last_events == events
    assert any("tracker reset" in r.message for r in caplog.records)
    assert out.track_ids[0] not in (0, tid)  # fresh track, fresh id
    # The next regular frame produces no event and keeps the new id.
    nxt = tr.update(frame([a], size=out.image_size), stamp=200.0)
    assert nxt.extra["tracker_events"] == [] and nxt.track_ids[0] == out.track_ids[0]


def test_forward_time_gap_resets_only_when_enabled():
    a = (0, 10, 10, 20, 20, E[0])
    for gap_s, expect_reset in ((0.0, False), (2.0, True)):
        tr = Tracker(TrackerConfig(n_init=1, reset_on_time_gap_s=gap_s))
        (tid,) = tr.update(frame([a]), stamp=1.0).track_ids
        out = tr.update(frame([a]), stamp=10.0)
        assert bool(out.extra["tracker_events"]) is expect_reset
        assert bool(out.track_ids[0] != tid) is expect_reset


def test_explicit_reset_clears_state():
    tr = Tracker(TrackerConfig(n_init=1))
    tr.update(frame([(0, 10, 10, 20, 20, E[0])]))
    tr.reset()
    assert tr.tracks == [] and tr.memory_ids == [] and tr.frame_index == -1
    assert tr.update(frame([(0, 10, 10, 20, 20, E[0])])).track_ids[0] == 2


def test_frame_index_gap_ages_tracks():
    tr = Tracker(TrackerConfig(n_init=1, max_age=3, reid_memory_size=0))
    (tid,) = tr.update(frame([(0, 10, 10, 20, 20, E[0])]), frame_index=0).track_ids
    tr.update(frame([]), frame_index=10)  # 10 frames later: older than max_age
    assert tr.tracks == []
    (new,) = tr.update(frame([(0, 10, 10, 20, 20, E[0])]), frame_index=11).track_ids
    assert new != tid


def test_ids_wrap_below_stuff_offset_skipping_live_ids():
    tr = Tracker(TrackerConfig(n_init=1, stuff_id_offset=4, max_age=0, reid_memory_size=0))
    keep = (0, 10, 10, 20, 20, E[0])
    (k,) = tr.update(frame([keep])).track_ids  # id 1 stays alive throughout
    seen = []
    for i in range(4):
        out = tr.update(frame([keep, (1, 80, 10 + 25 * (i % 2), 20, 20, E[1 + i])]))
        seen.append(int(out.track_ids[1]))
        assert out.track_ids[0] == k
    assert k == 1 and seen == [2, 3, 2, 3]


def test_bad_input_raises_clear_errors():
    tr = Tracker()
    with pytest.raises(TypeError, match="Segments"):
        tr.update(np.zeros((1, 4, 4), bool))
    tr.update(frame([(0, 10, 10, 20, 20, E[0])]))
    seg = frame([(0, 10, 10, 20, 20, E[0])])
    seg.embeddings = np.ones((1, 32), np.float32)
    with pytest.raises(ValueError, match="embedding dimension"):
        tr.update(seg)
    with pytest.raises(ValueError, match="masks are"):
        tr.update(frame([(0, 1, 1, 2, 2, E[0])]), image_size=(10, 10))
    with pytest.raises(ValueError, match="n_init"):
        TrackerConfig(n_init=0)
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="tentative_penalty"):
            TrackerConfig(tentative_penalty=bad)
    with pytest.raises(ValueError, match="same length"):
        TrackerConfig(gate_class_names=["box"], gate_class_thresholds=[])
    with pytest.raises(ValueError, match="unknown"):
        TrackerConfig().updated(nonsense=1)


def test_empty_frames_and_empty_segments():
    tr = Tracker()
    out = tr.update(Segments.empty((50, 60), embed_dim=8))
    assert len(out) == 0 and out.track_ids.shape == (0,)


def test_track_class_is_majority_vote_and_survives_a_flicker():
    tr = Tracker(TrackerConfig(n_init=1))
    a = (0, 10, 10, 20, 20, E[0])
    (tid,) = tr.update(frame([a])).track_ids
    tr.update(frame([a]))
    (t2,) = tr.update(frame([(1, 10, 10, 20, 20, E[0])])).track_ids  # one frame called "ball"
    assert t2 == tid and tr.tracks[0].class_name == "box"
    for _ in range(3):
        tr.update(frame([(1, 10, 10, 20, 20, E[0])]))
    assert tr.tracks[0].class_name == "ball" and tr.tracks[0].track_id == tid


def test_constant_velocity_prediction_keeps_fast_small_objects_without_embeddings():
    def run(horizon):
        tr = Tracker(TrackerConfig(n_init=1, motion_horizon=horizon, iou_grid=160))
        ids = []
        for x in (10, 13, 16, 20, 25, 31, 38, 46, 54):  # an 8-px box speeding up to 8 px per frame
            (tid,) = tr.update(frame([(0, x, 40, 8, 8, E[0])], with_emb=False)).track_ids
            ids.append(int(tid))
        return ids

    stable = run(3)
    assert len(set(stable)) == 1 and stable[0] > 0
    broken = run(0)
    assert len(set(broken)) > 1  # without motion prediction the track breaks once steps exceed ~4 px


def test_motion_prediction_over_an_occlusion_gap():
    tr = Tracker(TrackerConfig(n_init=1, iou_grid=160, max_age=5, reid_memory_size=0))
    for x in (10, 13, 17, 22):
        (tid,) = tr.update(frame([(0, x, 40, 10, 10, E[0])], with_emb=False)).track_ids
    tr.update(frame([], with_emb=False))       # occluded for one frame (would be at x = 27)
    (back,) = tr.update(frame([(0, 32, 40, 10, 10, E[0])], with_emb=False)).track_ids
    assert back == tid                         # no overlap with the last mask at x = 22: predicted x = 30.5


def test_pickled_tracker_resumes_identically():
    # bag_eval pickles its Tracker and VideoEvaluator as resume state.
    import pickle

    tr = Tracker(TrackerConfig(n_init=1))
    for x in (10, 13, 16):
        tr.update(frame([(0, x, 10, 20, 20, E[0]), (1, 90, 60, 20, 20, E[1])]))
    clone = pickle.loads(pickle.dumps(tr))
    nxt = frame([(1, 91, 60, 20, 20, E[1]), (0, 19, 10, 20, 20, E[0])])
    assert list(clone.update(nxt).track_ids) == list(tr.update(nxt).track_ids)


def test_a_wrong_velocity_from_a_stray_fragment_does_not_lose_a_still_object():
    # One frame's mask also catches a far fragment: the box centre jumps, so the velocity says "moving right fast".
    # The object has not moved; its next mask overlaps the last mask, not the velocity-shifted one.
    def seg(with_fragment):
        f = frame([(0, 40, 40, 10, 10, E[0])], with_emb=False)
        masks = f.masks.copy()
        if with_fragment:
            masks[0, 40:44, 120:124] = True
        return Segments(masks, f.scores, f.class_ids, f.class_names, f.is_thing)

    tr = Tracker(TrackerConfig(n_init=1, iou_grid=160, motion_horizon=3))
    ids = [int(tr.update(seg(fragment)).track_ids[0]) for fragment in (False, False, True)]
    assert tr.tracks[0].velocity[0] > 10  # the jump became a velocity that moves the mask off the object
    ids += [int(tr.update(seg(False)).track_ids[0]) for _ in range(2)]
    assert ids[0] > 0 and len(set(ids)) == 1, ids


@pytest.mark.parametrize("penalty,keeps_id", [(0.2, True), (0.0, False)])
def test_a_confirmed_track_wins_a_near_tie_against_a_tentative_one(penalty, keeps_id):
    """A second query on the same object (a fragment) starts a tentative track; when the object's next mask fits
    that fragment's mask a little better than the confirmed track's, the confirmed track must keep the object
    (seen on generated video: the fragment's track took over and the object changed id)."""
    tr = Tracker(TrackerConfig(n_init=2, tentative_penalty=penalty))
    a = (0, 10, 10, 20, 20, E[0])
    tr.update(frame([a]))
    (tid,) = tr.update(frame([a])).track_ids
    assert tid > 0
    obj, fragment = (0, 12, 10, 20, 20, E[0]), (0, 22, 10, 12, 20, E[0])
    ids = tr.update(frame([obj, fragment])).track_ids
    assert ids[0] == tid and ids[1] == 0                     # the fragment's track is tentative
    # IoU with the confirmed track's last mask 0.55, with the fragment's 0.86: sim differs by 0.4 x 0.31 = 0.125
    (got,) = tr.update(frame([(0, 20, 10, 14, 20, E[0])])).track_ids
    assert bool(got == tid) == keeps_id
