"""Several images in ONE image-graph call (predict/batch.py) with the shipped model on generated frames: every image
gets what `set_image` alone gives it; views share the model, vocabulary and thresholds but not their images.

Bounds: test/tolerances.py, "Batch-equals-single" (free-running re-run bounds for features; the same segments)."""
import numpy as np
import pytest
import torch

import tolerances as tol
from omg_seg_core.predict.batch import base_of, set_images
from omg_seg_core.predict.view import PredictorView


@pytest.fixture(scope="module")
def predictor(shipped_predictor):
    return shipped_predictor


@pytest.fixture(scope="module")
def frames():
    """Three 320x240 frames (one padded size) and one 240x240 frame (another aspect: another padded size)."""
    from omg_seg_core.train.synth_eval import heldout_frames

    rgb = [f.rgb for f in heldout_frames(4, seed=3)]
    return rgb[:3] + [np.ascontiguousarray(rgb[3][:, 40:280])]


def _count_calls(backend, monkeypatch) -> list[int]:
    """Batch sizes of the backend's image-graph calls from now on."""
    sizes, real = [], backend.run_image

    def counted(x):
        sizes.append(int(x.shape[0]))
        return real(x)

    monkeypatch.setattr(backend, "run_image", counted)
    return sizes


def _same_segments(a, b, what: str) -> None:
    assert len(a) == len(b), what
    np.testing.assert_array_equal(a.class_ids, b.class_ids, err_msg=what)
    assert a.masks.shape == b.masks.shape, what
    differing = int((a.masks != b.masks).sum())
    tol.check("batch_mask_pixels", differing, tol.pixels("inst_px", tol.RERUN_FREE), what)


def test_one_graph_call_per_size_and_each_image_equals_set_image(predictor, frames, monkeypatch):
    views = [PredictorView(predictor) for _ in frames]
    sizes = _count_calls(predictor.backend, monkeypatch)
    set_images(views, frames)
    assert sorted(sizes) == [1, 3], "one batched call per padded size"
    single = PredictorView(predictor)
    for i, (view, rgb) in enumerate(zip(views, frames)):
        single.set_image(rgb)
        fa, fb = view.features, single.features
        assert view.image_size == rgb.shape[:2] and view.image_meta == single.image_meta
        for name, key in (("mask_logits", "mask_window"), ("iou_logits", "iou"), ("query_feat", "query")):
            a, b = getattr(fa, name), getattr(fb, name)
            assert a.shape == b.shape and a.shape[0] == 1, name
            tol.check(f"batch_{name}", (a - b).abs().max().item(), tol.free(key), f"image {i}")
        tol.check("batch_cls", (view._class_logits() - single._class_logits()).abs().max().item(), tol.free("cls"))
        _same_segments(view.panoptic(), single.panoptic(), f"panoptic, image {i}")
        _same_segments(view.instances(), single.instances(), f"instances, image {i}")
        assert {"preprocess", "image_graph", "set_image"} <= set(view.last_timings)


def test_a_backend_max_batch_splits_the_call_and_each_image_still_equals_set_image(predictor, frames, monkeypatch):
    """A backend that takes at most `max_batch` images a call (a TensorRT engine built for fewer cameras than a
    library user gives CameraSessions) gets the size group in pieces instead of a batch it refuses."""
    monkeypatch.setattr(predictor.backend, "max_batch", 2, raising=False)
    views = [PredictorView(predictor) for _ in frames]
    sizes = _count_calls(predictor.backend, monkeypatch)
    set_images(views, frames)
    assert sorted(sizes) == [1, 1, 2], "the three 320x240 frames as 2 + 1, the other size alone"
    single = PredictorView(predictor)
    for i, (view, rgb) in enumerate(zip(views, frames)):
        single.set_image(rgb)
        diff = (view.features.mask_logits - single.features.mask_logits).abs().max().item()
        tol.check("batch_mask_logits", diff, tol.free("mask_window"), f"image {i}")
        _same_segments(view.panoptic(), single.panoptic(), f"panoptic, image {i}")


def test_views_share_vocabulary_and_thresholds_not_images(predictor, frames):
    a, b = PredictorView(predictor), PredictorView(predictor)
    assert isinstance(a, PredictorView) and base_of(a) is predictor and PredictorView(a).base is predictor
    set_images([a, b], frames[:2])
    assert not np.array_equal(a.image, b.image)
    old = predictor.thresholds.mask_threshold
    try:
        a.set_thresholds(mask_threshold=0.6)
        assert b.thresholds.mask_threshold == 0.6 == predictor.thresholds.mask_threshold
    finally:
        predictor.set_thresholds(mask_threshold=old)
    vocab = predictor.vocabulary
    n_before = b._class_logits().shape[-1]
    try:
        predictor.set_vocabulary(["box", "ball"], ["floor"])
        assert a.class_names == b.class_names == ["box", "ball", "floor"]
        assert b._class_logits().shape[-1] == 4 != n_before  # the cached logits followed the new vocabulary
        assert set(b.panoptic().class_names) <= {"box", "ball", "floor"}
    finally:
        predictor.set_vocabulary(vocab)


def test_a_rejected_batch_changes_nothing(predictor, frames):
    a, b = PredictorView(predictor), PredictorView(predictor)
    set_images([a, b], frames[:2])
    kept = a.features
    with pytest.raises(ValueError, match="image 1: .*shape"):
        set_images([a, b], [frames[2], np.zeros((10, 10), np.uint8)])
    assert a.features is kept and b.has_image
    with pytest.raises(ValueError, match="views of one predictor"):
        set_images([a, _other_model_view(predictor)], frames[:2])
    with pytest.raises(ValueError, match="twice"):
        set_images([a, a], frames[:2])
    with pytest.raises(ValueError, match="2 predictors for 1 images"):
        set_images([a, b], frames[:1])


def _other_model_view(predictor):
    """A view of another predictor object (shallow copy: another base)."""
    import copy

    return PredictorView(copy.copy(predictor))


def test_unbatch_gives_batch_one_slices(predictor, frames):
    from omg_seg_core.predict.preprocess import preprocess

    x = torch.cat([preprocess(f, predictor.long_side, 32)[0] for f in frames[:2]])
    feats = predictor.backend.run_image(x)
    parts = feats.unbatch()
    assert len(parts) == 2
    for i, p in enumerate(parts):
        assert p.mask_logits.shape[0] == 1 and len(p.memory) == 3 and p.clip_feat is None
        assert torch.equal(p.query_feat[0], feats.query_feat[i])
