"""Text candidates: colour naming from the XKCD survey (text/colour_names.py) and the ranking of mask pieces by
phrase score, mask confidence and colour (text/candidates.py)."""
import numpy as np
import pytest

from omg_seg_core.config import TaskThresholds
from omg_seg_core.predict.text_candidates import COLOUR_FLOOR, rank_pieces
from omg_seg_core.predict.colour_names import BASIC_COLOUR_TERMS, ColourNamer, colour_term


@pytest.mark.parametrize("phrase, term", [
    ("red box", "red"), ("the small Gray mug", "grey"), ("violet ball", "purple"), ("large box", None),
    ("reddish box", None), ("blue green cone", "blue"),     # the first basic term named; no guessing from "-ish"
])
def test_colour_term_of_a_phrase(phrase, term):
    assert colour_term(phrase) == term


@pytest.mark.parametrize("rgb, term", [
    ((200, 25, 25), "red"), ((30, 150, 45), "green"), ((25, 60, 210), "blue"), ((235, 205, 30), "yellow"),
    ((245, 120, 15), "orange"), ((115, 35, 160), "purple"), ((245, 120, 180), "pink"), ((105, 62, 30), "brown"),
    ((10, 10, 12), "black"), ((128, 128, 128), "grey"),
    ((150, 20, 20), "red"), ((255, 105, 180), "pink"),   # a shaded red (darker reads brown); CSS "hotpink"
])
def test_plain_colours_are_named_as_people_name_them(rgb, term):
    img = np.zeros((4, 6, 3), np.uint8)
    img[:, :3] = rgb
    mask = np.zeros((4, 6), bool)
    mask[:, :3] = True
    p = ColourNamer(img).distribution(mask)
    assert p.shape == (len(BASIC_COLOUR_TERMS),) and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert BASIC_COLOUR_TERMS[int(np.argmax(p))] == term, dict(zip(BASIC_COLOUR_TERMS, p.round(2)))
    assert ColourNamer(img).term_probability(mask, term) == pytest.approx(float(p.max()))


def test_near_white_is_white_or_grey_and_whiter_than_grey():
    """The survey names very light colours "pale grey" / "very light pink" too (pure white is ~0.4 white, ~0.45
    grey): white ranks a white object above any coloured or grey one, which is what a request needs."""
    def p(rgb):
        img = np.full((1, 1, 3), rgb, np.uint8)
        return dict(zip(BASIC_COLOUR_TERMS, ColourNamer(img).distribution(np.ones((1, 1), bool))))

    for white in ((255, 255, 255), (240, 240, 240), (235, 235, 230)):
        assert max(p(white), key=p(white).get) in ("white", "grey", "pink"), p(white)
        assert p(white)["white"] > 0.15
        for other in ((128, 128, 128), (200, 200, 200), (245, 120, 180), (235, 205, 30), (200, 25, 25)):
            assert p(white)["white"] > 3 * p(other)["white"], (white, other)


def test_mask_colour_is_the_mean_over_its_pixels_and_bad_input_is_refused():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0] = (200, 25, 25)
    img[1] = (25, 60, 210)
    namer = ColourNamer(img)
    half = namer.term_probability(np.ones((2, 2), bool), "red")
    assert half == pytest.approx(namer.term_probability(np.array([[1, 1], [0, 0]], bool), "red") / 2, rel=1e-3)
    assert namer.term_probability(np.zeros((2, 2), bool), "red") == 0.0
    assert namer.term_probability(np.array([[1, 1], [0, 0]], bool), "gray") >= 0.0   # synonym accepted
    with pytest.raises(ValueError, match="uint8"):
        ColourNamer(img.astype(np.float32))
    with pytest.raises(ValueError, match="temperature"):
        ColourNamer(img, temperature=0.0)


def _probs(*masks_and_conf):
    """float [K, H, W] mask probabilities: each (bool mask, probability inside it)."""
    return np.stack([np.where(m, c, 0.05).astype(np.float32) for m, c in masks_and_conf])


def _box(y0, y1, x0, x1, shape=(20, 60)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_a_mask_in_two_places_is_cut_and_the_surer_place_wins():
    left, right = _box(5, 15, 2, 12), _box(5, 15, 40, 50)
    probs = _probs((left | right, 0.6))
    probs[0][right] = 0.95                                     # the query is surer of the right object
    r = rank_pieces(probs, np.array([0.8]), 0.5, gap_px=5, min_fraction=0.2, confidence_power=8)
    assert len(r) == 2 and list(r.rows) == [0, 0]
    assert np.array_equal(r.masks[0], right) and np.array_equal(r.masks[1], left)
    assert r.rank[0] == pytest.approx(0.8 * 0.95 ** 8, rel=1e-5) and r.confidence[1] == pytest.approx(0.6, rel=1e-5)
    whole = rank_pieces(probs, np.array([0.8]), 0.5, gap_px=-1, min_fraction=0.2, confidence_power=8)
    assert len(whole) == 1 and np.array_equal(whole.masks[0], left | right)   # gap < 0: masks stay whole


def test_the_colour_word_picks_the_piece_of_that_colour():
    img = np.zeros((20, 60, 3), np.uint8)
    left, right = _box(5, 15, 2, 12), _box(5, 15, 40, 50)
    img[left] = (245, 120, 180)                                 # pink
    img[right] = (200, 25, 25)                                  # red
    probs = _probs((left | right, 0.9))
    namer = ColourNamer(img)
    args = dict(mask_threshold=0.5, gap_px=5, min_fraction=0.2, colours=namer)
    red = rank_pieces(probs, np.array([0.5]), colour_power=4, term="red", **args)
    assert np.array_equal(red.masks[0], right) and red.colour[0] > 0.5
    pink = rank_pieces(probs, np.array([0.5]), colour_power=4, term="pink", **args)
    assert np.array_equal(pink.masks[0], left)
    blue = rank_pieces(probs, np.array([0.5]), colour_power=4, term="blue", **args)
    assert blue.colour.min() >= COLOUR_FLOOR                    # nothing blue: floored, still answered
    plain = rank_pieces(probs, np.array([0.5]), colour_power=0, term="red", **args)
    assert np.all(plain.colour == 1.0) and np.all(plain.rank == 0.5)


def test_a_better_query_beats_a_piece_and_duplicates_answer_once():
    obj, other = _box(2, 18, 2, 20), _box(2, 18, 40, 58)
    probs = _probs((obj, 0.9), (obj, 0.9), (other, 0.9), (np.zeros_like(obj), 0.9))
    r = rank_pieces(probs, np.array([0.3, 0.2, 0.6, 0.9]), 0.5, gap_px=5, min_fraction=0.2, confidence_power=8)
    assert list(r.rows) == [2, 0]                               # query 1 repeats query 0's object; 3 is empty
    assert list(r.score) == [0.6, 0.3]
    empty = rank_pieces(np.zeros((0, 20, 60), np.float32), np.zeros(0), 0.5, 5, 0.2)
    assert len(empty) == 0 and empty.masks.shape == (0, 20, 60)


@pytest.mark.parametrize("name, value", [("text_confidence_power", -1.0), ("text_colour_power", float("nan")),
                                         ("text_colour_power", True), ("text_confidence_power", 17)])
def test_bad_ranking_powers_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        TaskThresholds(**{name: value})
