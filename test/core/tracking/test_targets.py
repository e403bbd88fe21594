"""TargetManager on hand-built frames (frame-segment re-finding, life cycle, lost reporting, removal)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from omg_seg_core.tracking import LOST, OCCLUDED, TRACKING, TargetManager, Tracker, TrackerConfig
from tracking_scenes import embeddings, frame

E = embeddings(6)


def as_text(seg, rows):
    """The rows of a frame as a text() result would return them (same decoder queries)."""
    return replace(seg.select(rows), task="text")


def run(tracker, tm, objs, **kw):
    seg = tracker.update(frame(objs), **{k: v for k, v in kw.items() if k in ("stamp",)})
    return seg, tm.update(seg, **kw)


def test_target_refound_with_stable_id_while_moving():
    tr, tm = Tracker(TrackerConfig(n_init=1)), TargetManager(TrackerConfig())
    seg = tr.update(frame([(0, 10, 10, 20, 20, E[0]), (0, 60, 10, 20, 20, E[1])]))
    tid = tm.register(as_text(seg, [1]), label="the second box", frame_segments=seg)
    for step in range(1, 8):
        objs = [(0, 60 + 4 * step, 10 + 2 * step, 20, 20, E[1]), (0, 10 + 3 * step, 10, 20, 20, E[0])]
        seg, out = run(tr, tm, objs)
        assert len(out) == 1 and out.track_ids[0] == tid and out.task == "targets"
        assert np.array_equal(out.masks[0], seg.masks[0])  # the moving second box, now listed first
        assert out.extra["target_states"] == [TRACKING] and out.extra["lost_ids"] == []
        assert out.extra["target_labels"] == ["the second box"]


def test_two_targets_never_share_a_segment():
    tr, tm = Tracker(TrackerConfig(n_init=1)), TargetManager()
    objs = [(2, 10, 10, 20, 20, E[0]), (2, 40, 10, 20, 20, E[0])]  # identical cups side by side
    seg = tr.update(frame(objs))
    a = tm.register(as_text(seg, [0]), frame_segments=seg)
    b = tm.register(as_text(seg, [1]), frame_segments=seg)
    seg, out = run(tr, tm, [(2, 43, 11, 20, 20, E[0]), (2, 12, 11, 20, 20, E[0])])
    assert list(out.track_ids) == [a, b]
    assert np.array_equal(out.masks[0], seg.masks[1]) and np.array_equal(out.masks[1], seg.masks[0])


def test_occluded_then_lost_is_reported_every_frame_then_reacquired():
    cfg = TrackerConfig(n_init=1, target_max_lost_frames=3, max_age=1, reid_memory_size=0)
    tr, tm = Tracker(cfg), TargetManager(cfg)
    seg = tr.update(frame([(1, 10, 10, 20, 20, E[2])]))
    tid = tm.register(as_text(seg, [0]), frame_segments=seg)
    states, events = [], []
    for _ in range(6):
        _, out = run(tr, tm, [(0, 90, 60, 20, 20, E[3])])  # only a distractor box is visible
        states.append(out.extra["target_states"][0])
        events += out.extra["target_events"]
        assert list(out.track_ids) == [tid] and not out.masks[0].any() and out.scores[0] == 0
    assert states == [OCCLUDED] * 3 + [LOST] * 3
    assert events == [f"target {tid} (text) lost"]
    assert out.extra["lost_ids"] == [tid]
    # Re-enters far away under a new tracker id: the embedding re-acquires it.
    seg, out = run(tr, tm, [(0, 90, 60, 20, 20, E[3]), (1, 120, 90, 20, 20, E[2] + 0.05 * E[4])])
    assert out.extra["target_states"] == [TRACKING] and out.extra["lost_ids"] == []
    assert np.array_equal(out.masks[0], seg.masks[1])
    assert out.extra["target_events"] == [f"target {tid} re-acquired"]


def test_lost_by_stamp_seconds():
    cfg = TrackerConfig(n_init=1, target_max_lost_s=1.0, target_max_lost_frames=1000)
    tr, tm = Tracker(cfg), TargetManager(cfg)
    seg = tr.update(frame([(1, 10, 10, 20, 20, E[2])]), stamp=0.0)
    tm.register(as_text(seg, [0]), frame_segments=seg, stamp=0.0)
    tm.update(seg, stamp=0.0)
    _, out = run(tr, tm, [], stamp=0.9)
    assert out.extra["target_states"] == [OCCLUDED]
    _, out = run(tr, tm, [], stamp=1.2)
    assert out.extra["target_states"] == [LOST]


def test_prompt_registered_target_follows_linked_track_id():
    # A prompt result's embedding lives in another space (here: unrelated vector); the link to the tracked
    # segment it overlapped at registration carries it through a jump with no mask overlap.
    tr, tm = Tracker(TrackerConfig(n_init=1)), TargetManager(TrackerConfig(n_init=1, w_embedding=0.0))
    seg = tr.update(frame([(0, 10, 10, 20, 20, E[0]), (1, 60, 60, 20, 20, E[1])]))
    prompt = replace(seg.select([0]), task="prompt", embeddings=E[5][None], class_ids=[-1], class_names=[""])
    tid = tm.register(prompt, frame_segments=seg)
    seg, out = run(tr, tm, [(0, 12, 12, 20, 20, E[0]), (1, 60, 60, 20, 20, E[1])])
    seg, out = run(tr, tm, [(1, 60, 60, 20, 20, E[1]), (0, 30, 40, 20, 20, E[0])])  # far jump
    assert out.track_ids[0] == tid and np.array_equal(out.masks[0], seg.masks[1])


def test_remove_and_clear():
    tr, tm = Tracker(TrackerConfig(n_init=1)), TargetManager()
    seg = tr.update(frame([(0, 10, 10, 20, 20, E[0]), (1, 60, 10, 20, 20, E[1])]))
    a = tm.register(as_text(seg, [0]))
    b = tm.register(as_text(seg, [1]))
    assert tm.remove(a) is True and tm.remove(a) is False
    _, out = run(tr, tm, [(0, 10, 10, 20, 20, E[0]), (1, 60, 10, 20, 20, E[1])])
    assert list(out.track_ids) == [b]
    assert tm.clear() == 1 and len(tm) == 0
    c = tm.register(as_text(seg, [0]))
    assert c not in (a, b)
    _, out = run(tr, tm, [])
    assert list(out.track_ids) == [c]


def test_size_change_marks_targets_lost_not_dropped():
    tr, tm = Tracker(TrackerConfig(n_init=1)), TargetManager()
    seg = tr.update(frame([(0, 10, 10, 20, 20, E[0])]))
    tid = tm.register(as_text(seg, [0]), frame_segments=seg)
    seg = tr.update(frame([(0, 10, 10, 20, 20, E[0])], size=(60, 80)))
    out = tm.update(seg)
    assert list(out.track_ids) == [tid] and out.image_size == (60, 80)
    assert any("image size changed" in e for e in out.extra["target_events"])
    # The same object seen again at the new size is re-acquired by its embedding.
    assert out.extra["target_states"] == [TRACKING]


def test_register_bad_input():
    tm = TargetManager()
    seg = frame([(0, 10, 10, 20, 20, E[0])])
    with pytest.raises(TypeError):
        tm.register(seg.masks)
    with pytest.raises(ValueError, match="out of range"):
        tm.register(seg, index=3)
    with pytest.raises(ValueError, match="empty"):
        tm.register(frame([(0, 10, 10, 0, 0, E[0])]))
    with pytest.raises(ValueError, match="frame_segments or image_size"):
        tm.update(None)


def test_live_config_change_including_iou_grid():
    tr, tm = Tracker(TrackerConfig(n_init=1)), TargetManager()
    seg = tr.update(frame([(0, 10, 10, 20, 20, E[0])]))
    tid = tm.register(as_text(seg, [0]), frame_segments=seg)
    (track,) = seg.track_ids
    tr.config = TrackerConfig(n_init=1, match_threshold=0.3)         # no reset for ordinary settings
    assert tr.update(frame([(0, 12, 10, 20, 20, E[0])])).track_ids[0] == track
    tr.config = TrackerConfig(n_init=1, iou_grid=32)                  # stored grids change layout: reset
    out = tr.update(frame([(0, 12, 10, 20, 20, E[0])]))
    assert len(out.extra["tracker_events"]) == 1 and "iou_grid" in out.extra["tracker_events"][0]
    tm.config = TrackerConfig(iou_grid=32, w_embedding=0.0)          # targets re-sample their masks
    res = tm.update(out)
    assert list(res.track_ids) == [tid] and res.extra["target_states"] == ["tracking"]
    with pytest.raises(TypeError):
        tr.config = {"n_init": 1}
