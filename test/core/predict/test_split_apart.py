"""Thing masks in far-apart places become one segment per place (omg_seg_core/predict/split_apart.py)."""
import numpy as np
import pytest

from omg_seg_core.config import TaskThresholds
from omg_seg_core.predict.split_apart import split_apart_things, split_mask
from omg_seg_core.structures import Segments

H, W = 60, 80  # long side 80: gap 0.1 = 8 px


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _segments(masks: list[np.ndarray], is_thing: list[bool]) -> Segments:
    n = len(masks)
    seg = Segments(np.stack(masks), np.linspace(0.9, 0.5, n), list(range(n)), [f"c{i}" for i in range(n)], is_thing,
                   embeddings=np.arange(n * 4, dtype=np.float32).reshape(n, 4), query_index=np.arange(10, 10 + n),
                   task="panoptic")
    seg.extra["panoptic_ids"] = np.array([c + 1000 * (k + 1) if t else c for k, (c, t) in
                                          enumerate(zip(range(n), is_thing))], np.int64)
    return seg


def test_two_look_alikes_in_one_mask_become_two_segments_with_the_query_of_the_mask():
    twins = _rect(10, 30, 5, 20) | _rect(12, 32, 50, 62)       # 30 px apart
    seg = _segments([twins, _rect(40, 50, 30, 40)], [True, True])
    out = split_apart_things(seg, gap=0.1, min_fraction=0.2)
    assert len(out) == 3 and out.extra["split_apart"] == 1
    np.testing.assert_array_equal(out.masks[0], _rect(10, 30, 5, 20))    # largest piece first (300 > 240 px)
    np.testing.assert_array_equal(out.masks[1], _rect(12, 32, 50, 62))
    np.testing.assert_array_equal(out.boxes[:2], [[5, 10, 20, 30], [50, 12, 62, 32]])
    assert out.class_ids.tolist() == [0, 0, 1] and out.query_index.tolist() == [10, 10, 11]
    np.testing.assert_array_equal(out.embeddings[0], out.embeddings[1])
    np.testing.assert_allclose(out.scores[:2], seg.scores[0])
    # the first piece keeps the official id; the new one continues the thing numbering (k = 3)
    assert out.extra["panoptic_ids"].tolist() == [1000, 3000, 2001]
    assert len(seg) == 2 and seg.masks[0].sum() == twins.sum()           # input untouched


def test_an_object_cut_by_a_thin_occluder_stays_one_segment():
    cut = _rect(10, 40, 10, 30) & ~_rect(0, H, 18, 22)                  # 4 px gap < 8 px
    out = split_apart_things(_segments([cut], [True]), gap=0.1, min_fraction=0.2)
    assert len(out) == 1 and out.extra["split_apart"] == 0
    np.testing.assert_array_equal(out.masks[0], cut)


def test_specks_join_the_nearest_piece_and_no_pixel_is_lost():
    m = _rect(10, 30, 5, 20) | _rect(12, 32, 50, 62)
    m[45, 8] = m[5, 70] = True                                          # specks far from both
    pieces = split_mask(m, gap_px=8, min_fraction=0.2)
    assert len(pieces) == 2
    np.testing.assert_array_equal(pieces[0] | pieces[1], m)
    assert not (pieces[0] & pieces[1]).any()
    assert pieces[0][45, 8] and pieces[1][5, 70]                        # each speck with its nearest piece


def test_small_parts_alone_do_not_split_a_mask():
    m = _rect(10, 40, 10, 40)
    m[55, 75] = True                                                    # a far speck: < 20 % of the mask
    assert len(split_mask(m, gap_px=8, min_fraction=0.2)) == 1


def test_stuff_is_never_split_and_a_negative_gap_is_the_official_output():
    apart = _rect(0, 10, 0, 80) | _rect(50, 60, 0, 80)
    seg = _segments([apart, _rect(20, 30, 0, 10) | _rect(20, 30, 60, 70)], [False, True])
    assert len(split_apart_things(seg, gap=0.1, min_fraction=0.2)) == 3   # only the thing splits
    assert split_apart_things(seg, gap=-1, min_fraction=0.2) is seg


@pytest.mark.parametrize("kw", [{"split_apart_gap": "far"}, {"split_apart_gap": True},
                                {"split_apart_min_fraction": 0.0}, {"split_apart_min_fraction": 0.6}])
def test_bad_split_settings_are_refused_with_their_name(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        TaskThresholds().updated(**kw)
