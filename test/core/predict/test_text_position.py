"""Position words in text requests are resolved geometrically (omg_seg_core/predict/text_position.py)."""
import numpy as np
import pytest

from omg_seg_core.predict.text_candidates import rank_pieces
from omg_seg_core.predict.text_position import Position, pick_by_position, pick_candidate, split_position
from omg_seg_core.predict.text_query import extract_phrase


@pytest.mark.parametrize("query, base, position", [
    ("segment the left mug", "mug", Position("left", 0)),
    ("the right large blue cone", "large blue cone", Position("right", 0)),
    ("the leftmost green cylinder", "green cylinder", Position("left", 0)),
    ("rightmost red box", "red box", Position("right", 0)),
    ("the second from the left small red box", "small red box", Position("left", 1)),
    ("the third cup from the right", "cup", Position("right", 2)),
    ("the 2nd bottle from the left", "bottle", Position("left", 1)),
    ("the number 5 from the left blue ball", "blue ball", Position("left", 4)),
    ("the red box on the right", "red box", Position("right", 0)),
    ("the red box", "red box", None),
    ("left", "left", None),                           # nothing left to look for: an ordinary phrase
    ("the second red box", "second red box", None),   # an ordinal without a side is not a position
])
def test_position_words_are_parsed(query, base, position):
    got_base, got_pos = split_position(extract_phrase(query))
    assert (got_base, got_pos) == (base, position)


def _blob(x0: int, x1: int, w: int = 100) -> np.ndarray:
    m = np.zeros((20, w), bool)
    m[5:15, x0:x1] = True
    return m


def test_candidates_are_ordered_by_mask_centroid_x():
    masks = np.stack([_blob(60, 70), _blob(10, 20), _blob(35, 45)])
    assert pick_by_position(masks, Position("left", 0)) == 1
    assert pick_by_position(masks, Position("left", 1)) == 2
    assert pick_by_position(masks, Position("right", 0)) == 0
    assert pick_by_position(masks, Position("left", 3)) is None        # only three candidates


def _ranked(masks: list, scores: list):
    probs = np.stack(masks).astype(np.float32) * 0.9                  # masks as mask probabilities
    return rank_pieces(probs, np.array(scores), 0.5, gap_px=8, min_fraction=0.2)


def test_one_match_covering_two_look_alikes_is_cut_before_picking():
    both = _blob(10, 20) | _blob(60, 70)                                # one query, two objects 40 px apart
    weak = _blob(35, 45)                                               # a poor match far below the best score
    ranked = _ranked([both, weak], [0.9, 0.1])
    k = pick_candidate(ranked, Position("right", 0), rel=0.35)
    assert ranked.rows[k] == 0 and np.array_equal(ranked.masks[k], _blob(60, 70))
    ranked = _ranked([both, weak], [0.9, 0.5])
    k = pick_candidate(ranked, Position("left", 1), rel=0.35)
    assert ranked.rows[k] == 1 and np.array_equal(ranked.masks[k], weak)  # now a candidate, between the two
    assert pick_candidate(_ranked([both], [0.9]), Position("left", 2), 0.35) is None
    assert pick_candidate(_ranked([np.zeros_like(both)], [0.9]), Position("left", 0), 0.35) is None
