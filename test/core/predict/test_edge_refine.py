"""Mask borders snapped to colour edges by a guided filter (omg_seg_core/predict/edge_refine.py)."""
import cv2
import numpy as np
import pytest

from omg_seg_core.config import TaskThresholds
from omg_seg_core.predict.edge_refine import GuidedFilter, refine_masks, refine_partition, refine_segments
from omg_seg_core.structures import mask_iou
from omg_seg_core.structures import Segments

H, W = 96, 128


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy grey background with a red square and a blue disc -> image uint8 [H, W, 3], square, disc masks."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(128, 3, (H, W, 3)), 0, 255)
    yy, xx = np.mgrid[:H, :W]
    square = (yy >= 20) & (yy < 52) & (xx >= 16) & (xx < 56)
    disc = (yy - 60) ** 2 + (xx - 90) ** 2 < 18 ** 2
    img[square] = (200, 40, 40)
    img[disc] = (40, 60, 190)
    return img.astype(np.uint8), square, disc


def _dense_reference(image: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter over the whole image, written plainly (np.linalg.inv per pixel)."""
    def box(x):
        return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)
    i = image.astype(np.float32) / 255
    mean_i, mean_p = box(i), box(p)
    cov_ii = np.stack([[box(i[..., a] * i[..., b]) - mean_i[..., a] * mean_i[..., b] for b in range(3)]
                       for a in range(3)]).transpose(2, 3, 0, 1) + eps * np.eye(3, dtype=np.float32)
    cov_ip = np.stack([box(i[..., c] * p) - mean_i[..., c] * mean_p for c in range(3)], -1)
    a = np.einsum("hwij,hwj->hwi", np.linalg.inv(cov_ii), cov_ip)
    b = mean_p - (a * mean_i).sum(-1)
    return (box(a) * i).sum(-1) + box(b)


@pytest.mark.parametrize("radius", [1, 3])
def test_windowed_filter_equals_the_dense_guided_filter(radius):
    img, square, disc = _scene()
    gf = GuidedFilter(img, radius, 1e-3)
    for m in (square, disc, square | disc):
        ref = _dense_reference(img, m.astype(np.float32), radius, 1e-3)
        np.testing.assert_allclose(gf(m), ref, atol=2e-4)


def test_subsampled_filter_in_windows_equals_the_whole_image_computation():
    """Fast guided filter: the per-mask window gives what the whole-image coefficients give (zeros outside)."""
    img, square, disc = _scene()
    whole = GuidedFilter(img, 2, 1e-4, subsample=4)
    win, resp = whole.filter_window(square)
    assert (win[0].stop - win[0].start) < H or (win[1].stop - win[1].start) < W   # a window, not the image
    full = whole(square)
    np.testing.assert_array_equal(full[win], resp)
    outside = np.ones((H, W), bool)
    outside[win] = False
    assert not full[outside].any()


@pytest.mark.parametrize("radius,subsample", [(8, 1), (2, 4)])   # the window must reach past the error
def test_a_border_a_few_pixels_off_snaps_to_the_colour_edge(radius, subsample):
    img, square, disc = _scene()
    shifted = np.roll(square, (2, 3), axis=(0, 1))           # the mask a coarse decoder might give
    grown = cv2.dilate(disc.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    out = refine_masks(img, np.stack([shifted, grown]), radius, 1e-4, subsample)
    assert mask_iou(shifted, square) < 0.85 and mask_iou(grown, disc) < 0.85
    assert mask_iou(out[0], square) > 0.97
    assert mask_iou(out[1], disc) > 0.97


def test_a_partition_stays_a_partition_and_its_borders_move_to_the_edges():
    img, square, disc = _scene()
    sq = np.roll(square, (2, -3), axis=(0, 1))
    dc = np.roll(disc, (0, 3), axis=(0, 1)) & ~sq
    masks = np.stack([sq, dc, ~(sq | dc)])                   # background as a segment: every pixel covered
    out = refine_partition(img, masks, 2, 1e-4, subsample=4)
    assert (out.sum(0) == 1).all()                           # no overlap, no pixel lost
    assert mask_iou(out[0], square) > 0.97 and mask_iou(out[1], disc) > 0.97
    # with uncovered pixels: they stay uncovered unless the image says they belong to a mask
    out2 = refine_partition(img, masks[:2], 2, 1e-4, subsample=4)
    assert (out2.sum(0) <= 1).all()
    assert mask_iou(out2[0], square) > 0.97


@pytest.mark.parametrize("subsample", [1, 4])
def test_the_whole_frame_guide_gives_what_the_per_window_guide_gives(monkeypatch, subsample):
    """A partition converts the guide once (frames up to _FULL_GUIDE_PIXELS), larger frames per window: same bits."""
    from omg_seg_core.predict import edge_refine

    img, square, disc = _scene(3)
    masks = np.stack([square, disc & ~square])
    for m in (square, disc):
        np.testing.assert_array_equal(GuidedFilter(img, 2, 1e-4, subsample, full_guide=True)(m),
                                      GuidedFilter(img, 2, 1e-4, subsample)(m))
    whole = refine_partition(img, masks, 2, 1e-4, subsample)
    monkeypatch.setattr(edge_refine, "_FULL_GUIDE_PIXELS", 0)  # as for a frame over the limit
    assert GuidedFilter(img, 2, 1e-4, subsample, full_guide=True).full is None
    np.testing.assert_array_equal(refine_partition(img, masks, 2, 1e-4, subsample), whole)


def test_a_mask_thinner_than_the_window_is_kept_not_lost():
    img, square, _ = _scene()
    speck = np.zeros((H, W), bool)
    speck[70, 20] = True                                     # one pixel on flat background
    out = refine_masks(img, speck[None], 3, 1e-4)
    np.testing.assert_array_equal(out[0], speck)
    part = refine_partition(img, np.stack([speck, ~speck]), 3, 1e-4)
    np.testing.assert_array_equal(part[0], speck)
    assert (part.sum(0) == 1).all()


def test_refine_segments_keeps_everything_but_masks_and_boxes():
    img, square, disc = _scene()
    seg = Segments(np.stack([np.roll(square, 2, axis=1), disc]), [0.9, 0.8], [3, 4], ["box", "ball"],
                   [True, True], embeddings=np.ones((2, 4), np.float32), query_index=[7, 9], task="prompt")
    seg.extra["prompt_kind"] = ["box", "box"]
    out = refine_segments(seg, img, 2, 1e-4, subsample=4, exclusive=False)
    assert out.class_names == seg.class_names and out.query_index.tolist() == [7, 9]
    assert out.extra == seg.extra and out.task == "prompt"
    np.testing.assert_allclose(out.boxes[0], [16, 20, 56, 52])  # recomputed from the refined mask
    assert refine_segments(seg, img, 0, 1e-4, exclusive=False) is seg
    with pytest.raises(ValueError, match="differ in size"):
        refine_segments(seg, img[:50], 3, 1e-4, exclusive=False)


@pytest.mark.parametrize("kw", [{"edge_refine_radius": -1}, {"edge_refine_radius": 2.5}, {"edge_refine_radius": True},
                                {"edge_refine_radius": "2"}, {"edge_refine_radius": 17},
                                {"edge_refine_radius": float("inf")}, {"edge_refine_radius": float("nan")},
                                {"edge_refine_eps": 0},
                                {"edge_refine_eps": 1.0}, {"edge_refine_eps": float("nan")},
                                {"edge_refine_eps": "small"}])
def test_bad_settings_are_refused_with_the_name(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        TaskThresholds(**kw)


def test_bad_filter_arguments_are_refused():
    img, _, _ = _scene()
    for args in [(0, 1e-3, 1), (2, 0.0, 1), (2, 1e-3, 0)]:
        with pytest.raises(ValueError, match="guided filter needs"):
            GuidedFilter(img, *args)


def test_repeated_masks_get_the_same_answer_as_alone():
    """instances() lists a query's mask once per class: each distinct mask is filtered once, rows keep their order."""
    img, square, disc = _scene()
    a, b = np.roll(square, 2, axis=1), np.roll(disc, -2, axis=0)
    alone = refine_masks(img, np.stack([a, b]), 2, 1e-4, 4)
    rep = refine_masks(img, np.stack([a, b, a, b, a]), 2, 1e-4, 4)
    for i, j in enumerate([0, 1, 0, 1, 0]):
        np.testing.assert_array_equal(rep[i], alone[j])
    assert not np.array_equal(alone[0], alone[1])


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (5, 1), (7, 9)])
@pytest.mark.parametrize("subsample", [1, 4])
def test_images_smaller_than_the_window_work(h, w, subsample):
    img = np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    m = np.zeros((2, h, w), bool)
    m[0, 0, 0] = True
    m[1] = ~m[0]
    assert refine_masks(img, m, 2, 1e-4, subsample).shape == (2, h, w)
    part = refine_partition(img, m, 2, 1e-4, subsample)
    assert (part.sum(0) == 1).all()
    np.testing.assert_array_equal(part.any(axis=(1, 2)), m.any(axis=(1, 2)))  # no mask vanishes (1x1: one is empty)
