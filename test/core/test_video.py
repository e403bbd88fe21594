"""VideoSession: the per-frame loop (set_image -> task -> tracker -> recovery -> targets) and requests on the cached
frame, with the shipped model on a generated video (real predictor, real tracker)."""
import numpy as np
import pytest
import torch

from omg_seg_core.config import default_checkpoint_path
from omg_seg_core.tracking import TargetManager, Tracker, TrackerConfig
from omg_seg_core.video import TASKS, NoFrameError, VideoSession


@pytest.fixture(scope="module")
def frames():
    from omg_seg_core.data.synth import SynthGenerator

    gen = SynthGenerator(320, 240, split="heldout", seed=3)
    try:
        return list(gen.sequence(0, 6))
    finally:
        gen.close()


@pytest.fixture(scope="module")
def predictor():
    from omg_seg_core.data.synth import world
    from omg_seg_core.predict import build_predictor

    torch.manual_seed(0)
    return build_predictor(str(default_checkpoint_path()), vocabulary=world.vocabulary_path())


def test_step_tracks_things_with_stable_ids_and_times_each_stage(predictor, frames):
    cfg = TrackerConfig()
    s = VideoSession(predictor, Tracker(cfg), TargetManager(cfg))
    ids = []
    for t, f in enumerate(frames):
        r = s.step(f.rgb, stamp=t * 0.1)
        assert r.frame_index == t and r.stamp == pytest.approx(t * 0.1) and r.targets is None
        assert r.segments.image_size == (240, 320) and s.latest is r.segments
        assert {"preprocess", "image_graph", "task", "tracker", "recovery"} <= set(r.timings)
        assert r.model_ms >= r.timings["image_graph"]
        ids.append(set(r.segments.track_ids[r.segments.is_thing].tolist()))
    assert s.image_passes == len(frames)
    assert len(ids[-1] & ids[-2]) > 0, "no thing kept its id between the last two frames"


def test_requests_need_a_frame_or_their_own_image(predictor, frames):
    s = VideoSession(predictor)
    with pytest.raises(NoFrameError):
        s.prompt(points=[[10, 10]])
    seg, ids = s.prompt(points=[[160, 120]], image=frames[0].rgb)
    assert len(seg) == 1 and ids == [] and s.image_passes == 1
    with pytest.raises(ValueError, match="track=true needs tracking"):
        s.prompt(points=[[160, 120]], track=True)


def test_followed_text_target_is_found_in_later_frames(predictor, frames):
    cfg = TrackerConfig()
    s = VideoSession(predictor, Tracker(cfg), TargetManager(cfg))
    s.step(frames[0].rgb, stamp=0.0)
    thing = next(x for x in frames[0].segments if x.is_thing and x.phrase_unique and x.phrase)
    seg, ids = s.text(thing.phrase, track=True)
    assert len(ids) == len(seg) >= 1 and list(seg.track_ids) == ids
    r = s.step(frames[1].rgb, stamp=0.1)
    assert r.targets is not None and set(ids) <= set(r.targets.track_ids.tolist())
    assert s.remove_target(ids[0]) and not s.remove_target(ids[0])
    assert s.reset_tracks("test") == len(ids) - 1


def test_without_a_tracker_things_get_per_frame_ids(predictor, frames):
    s = VideoSession(predictor, task="instances")
    r = s.step(frames[0].rgb)
    things = r.segments.is_thing
    assert sorted(r.segments.track_ids[things].tolist()) == list(range(1, int(things.sum()) + 1))
    with pytest.raises(ValueError, match="task must be one of"):
        s.task = "bogus"
    assert s.task == "instances" and "instances" in TASKS


def test_vocabulary_change_resets_tracks(predictor, frames):
    cfg = TrackerConfig()
    tracker = Tracker(cfg)
    s = VideoSession(predictor, tracker)
    s.step(frames[0].rgb)
    s.step(frames[1].rgb)
    assert tracker.tracks
    old = predictor.vocabulary
    try:
        assert s.set_vocabulary(["box", "ball"], ["floor"]) == 3
        assert not tracker.tracks and s.class_names == ["box", "ball", "floor"]
    finally:
        predictor.set_vocabulary(old)


def test_the_predictor_is_what_tracking_asks_for(predictor):
    """recover_missed and TargetManager depend on the Resegmenter protocol, which the predictor satisfies."""
    from omg_seg_core.tracking import Resegmenter

    assert isinstance(predictor, Resegmenter)


def test_depth_gives_segments_targets_and_answers_3d(predictor):
    """With a DepthFrame every segment, target and request answer on that frame gets Boxes3D; a request on its own
    image (no depth) gets none; frames without depth stay 2D."""
    from omg_seg_core.data.synth import SynthGenerator
    from omg_seg_core.spatial import DepthFrame

    gen = SynthGenerator(320, 240, split="heldout", seed=3)
    try:
        f = gen.frame(1)
    finally:
        gen.close()
    cfg = TrackerConfig()
    s = VideoSession(predictor, Tracker(cfg), TargetManager(cfg))
    depth = DepthFrame(f.depth, f.camera)
    r = s.step(f.rgb, 0.0, depth=depth)
    b = r.segments.boxes_3d
    assert b is not None and len(b) == len(r.segments) and b.valid[r.segments.is_thing].all()
    assert "depth" in r.timings
    target = max(f.things(), key=lambda t: t.area)
    x, y, w, h = target.bbox
    seg, ids = s.prompt(boxes=[[x, y, x + w, y + h]], track=True)
    assert seg.boxes_3d is not None and seg.boxes_3d.valid[0]
    assert np.linalg.norm(seg.boxes_3d.position[0] - np.array(target.center_3d)) < 0.05
    r = s.step(f.rgb, 0.1, depth=depth)
    assert r.targets is not None and r.targets.boxes_3d is not None and r.targets.boxes_3d.valid[0]
    own, _ = s.text("the box", image=f.rgb)
    assert own.boxes_3d is None  # a request image has no depth
    assert s.step(f.rgb, 0.2).segments.boxes_3d is None
    with pytest.raises(ValueError, match="depth"):
        s.step(f.rgb, 0.3, depth=DepthFrame(f.depth[:100], f.camera))
