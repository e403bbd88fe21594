"""CameraSessions: several cameras through one model (one batched image-graph call per step), each with its own
tracker, targets and cached frame, with the shipped model on generated videos (real predictor, real trackers).

Bounds: test/tolerances.py, "Batch-equals-single" (the same segments and ids; mask pixels bounded)."""
import numpy as np
import pytest
import torch

import tolerances as tol
from omg_seg_core.multi_camera import CameraFrame, CameraSessions
from omg_seg_core.predict.view import PredictorView
from omg_seg_core.tracking import TargetManager, Tracker, TrackerConfig
from omg_seg_core.video import VideoSession

NAMES = ("front", "left", "right")


@pytest.fixture(scope="module")
def predictor(shipped_predictor):
    return shipped_predictor


@pytest.fixture(scope="module")
def videos():
    """Three cameras, 4 frames each: 320x240, 320x240 and 240x240 (another padded size)."""
    from omg_seg_core.data.synth import SynthGenerator

    out = {}
    for k, name in enumerate(NAMES):
        gen = SynthGenerator(320 if k < 2 else 240, 240, split="heldout", seed=10 + k)
        try:
            out[name] = [f.rgb for f in gen.sequence(0, 4)]
        finally:
            gen.close()
    return out


def _tracking():
    cfg = TrackerConfig()
    return Tracker(cfg), TargetManager(cfg)


def test_batched_cameras_equal_separate_sessions(predictor, videos, monkeypatch):
    multi = CameraSessions(predictor, NAMES, tracking=_tracking)
    alone = {n: VideoSession(PredictorView(predictor), *_tracking()) for n in NAMES}
    sizes, real = [], predictor.backend.run_image
    monkeypatch.setattr(predictor.backend, "run_image", lambda x: (sizes.append(int(x.shape[0])), real(x))[1])
    published = []
    for t in range(4):
        n_calls = len(sizes)
        results = multi.step({n: CameraFrame(videos[n][t], stamp=t * 0.1) for n in NAMES},
                             on_result=lambda name, r: published.append((name, r.frame_index)))
        assert sorted(sizes[n_calls:]) == [1, 2], "one image-graph call per padded size, not per camera"
        assert list(results) == list(NAMES)
        for n in NAMES:
            a, b = results[n], alone[n].step(videos[n][t], stamp=t * 0.1)
            assert a.frame_index == b.frame_index == t and a.stamp == pytest.approx(t * 0.1)
            assert a.segments.image_size == videos[n][t].shape[:2]
            assert len(a.segments) == len(b.segments), (n, t)
            np.testing.assert_array_equal(a.segments.class_ids, b.segments.class_ids)
            np.testing.assert_array_equal(a.segments.track_ids, b.segments.track_ids)
            tol.check("multicam_mask_pixels", int((a.segments.masks != b.segments.masks).sum()),
                      tol.pixels("inst_px", tol.RERUN_FREE), f"{n}, frame {t}")
            assert a.model_ms >= a.timings["image_graph"] > 0
    assert published[:3] == [(n, 0) for n in NAMES]  # each camera's result handed over as soon as it is done
    assert multi.batches == 4 and multi.batched_frames == 12 and multi.image_passes == 12


def test_a_camera_without_a_frame_is_not_waited_for_and_keeps_its_state(predictor, videos):
    multi = CameraSessions(predictor, NAMES, tracking=_tracking)
    multi.step({n: CameraFrame(videos[n][0], stamp=0.0) for n in NAMES})
    right_latest = multi["right"].latest
    for t in (1, 2):  # the right camera stopped
        results = multi.step({n: CameraFrame(videos[n][t], stamp=t * 0.1) for n in ("front", "left")})
        assert set(results) == {"front", "left"}
    assert multi["front"].frame_index == multi["left"].frame_index == 2
    assert multi["right"].frame_index == 0 and multi["right"].latest is right_latest
    assert multi["right"].image_passes == 1 and multi["front"].image_passes == 3
    assert multi.step({}) == {}


def test_requests_answer_about_their_own_camera(predictor, videos):
    multi = CameraSessions(predictor, NAMES, tracking=_tracking)
    multi.step({n: CameraFrame(videos[n][0], stamp=1.0 + i) for i, n in enumerate(NAMES)})
    passes = multi.image_passes
    seg, ids = multi["right"].prompt(points=[[100, 100]], track=True)
    assert seg.image_size == (240, 240) and ids  # the right camera's 240x240 frame, not the front's
    seg, _ = multi["front"].prompt(points=[[100, 100]])
    assert seg.image_size == (240, 320)
    assert multi.image_passes == passes, "a request on a cached frame ran the backbone"
    assert len(multi["right"].targets) == 1 and len(multi["front"].targets) == 0  # targets are per camera
    r = multi.step({"right": CameraFrame(videos["right"][1], stamp=5.0)})
    assert r["right"].targets is not None and len(r["right"].targets) == 1


def test_shared_settings_reach_every_camera(predictor, videos):
    multi = CameraSessions(predictor, NAMES, tracking=_tracking)
    multi.step({n: CameraFrame(videos[n][0]) for n in NAMES})
    assert any(len(s.tracker.tracks) > 0 for s in multi), "degenerate input: nothing tracked"
    vocab = predictor.vocabulary
    try:
        n = multi.set_vocabulary(["box", "ball"], ["floor"])
        assert n == 3 and multi.class_names == ["box", "ball", "floor"]
        assert all(s.class_names == ["box", "ball", "floor"] for s in multi)
        assert all(len(s.tracker.tracks) == 0 for s in multi), "every camera's tracks reset"
        results = multi.step({n: CameraFrame(videos[n][1]) for n in NAMES})
        assert all(set(r.segments.class_names) <= {"box", "ball", "floor"} for r in results.values())
    finally:
        predictor.set_vocabulary(vocab)
    old = predictor.thresholds.mask_threshold
    try:
        multi.set_thresholds(mask_threshold=0.7)
        assert all(s.predictor.thresholds.mask_threshold == 0.7 for s in multi)
    finally:
        predictor.set_thresholds(mask_threshold=old)
    multi.task = "semantic"
    assert all(s.task == "semantic" for s in multi)
    with pytest.raises(ValueError, match="task"):
        multi.task = "nonsense"


def test_errors_name_the_camera_and_spare_the_others(predictor, videos):
    with pytest.raises(ValueError, match="unique"):
        CameraSessions(predictor, ["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        CameraSessions(predictor, [])
    multi = CameraSessions(predictor, NAMES)
    with pytest.raises(KeyError, match=r"unknown camera 'back'.*front"):
        multi.step({"back": CameraFrame(videos["front"][0])})
    with pytest.raises(ValueError, match="image 1"):
        multi.step({"front": CameraFrame(videos["front"][0]), "left": CameraFrame(np.zeros((4, 4), np.uint8))})

    def fail_left(name, result):
        if name == "left":
            raise RuntimeError("publisher gone")

    out = multi.step({n: CameraFrame(videos[n][0]) for n in NAMES}, on_result=fail_left)
    assert isinstance(out["left"], RuntimeError) and out["front"].frame_index == out["right"].frame_index == 0


def test_exemplars_are_one_book_for_every_camera(predictor, videos, tmp_path):
    """Taught on one camera, found on another; removing or loading a name reaches every camera's preferred
    targets."""
    multi = CameraSessions(predictor, NAMES, tracking=_tracking)
    multi.step({n: CameraFrame(videos[n][0], stamp=0.0) for n in NAMES})
    try:
        _, seg, ids = multi["front"].add_exemplar("my thing", points=[[160, 120]], track=True)
        assert ids and multi["front"].exemplar_targets == {"my thing": ids[0]}
        _, rids = multi["left"].like(name="my thing", threshold=0.0, max_results=1, track=True)
        multi["left"].exemplar_targets["my thing"] = rids[0]  # as if the left camera followed it too
        found, _ = multi["left"].like(name="my thing", threshold=0.0)
        assert len(found) >= 1 and found.image_size == (240, 320)  # answered on the left camera's frame
        assert multi.save_exemplars(str(tmp_path / "ex.npz")) == 1
        assert multi.remove_exemplar("my thing") == 1
        assert all(s.exemplar_targets == {} for s in multi) and len(multi.exemplars) == 0
        multi["front"].exemplar_targets["my thing"] = ids[0]
        assert multi.load_exemplars(str(tmp_path / "ex.npz")) == 1 and multi.exemplars.names() == ["my thing"]
        assert all(s.exemplar_targets == {} for s in multi)
    finally:
        multi.exemplars.remove("")


def test_a_size_whose_image_graph_fails_costs_only_its_camera(predictor, videos, monkeypatch):
    """The right camera's 240x240 frames have their own padded size; when the backend fails for that size (an
    engine that cannot be built, out of memory), the front and left cameras are still served."""
    multi = CameraSessions(predictor, NAMES, tracking=_tracking)
    real = predictor.backend.run_image

    def run_image(x):
        if x.shape[-1] == x.shape[-2]:
            raise RuntimeError("engine build failed for this size")
        return real(x)

    monkeypatch.setattr(predictor.backend, "run_image", run_image)
    results = multi.step({n: CameraFrame(videos[n][0], stamp=0.0) for n in NAMES})
    assert isinstance(results["right"], RuntimeError) and "engine build failed" in str(results["right"])
    assert all(results[n].frame_index == 0 and len(results[n].segments) > 0 for n in ("front", "left"))
    assert multi["right"].image_size is None  # no frame of its own yet
