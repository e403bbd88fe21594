"""Matcher and losses behave as Mask2Former's: perfect predictions cost ~0, permutations are recovered."""
import pytest
import torch

from omg_seg_core.train.config import LossConfig
from omg_seg_core.train.losses import (LossWeights, attribute_negatives, contrastive_text_loss, pair_embedding_loss,
                                       referring_retrieval_loss, set_losses)
from omg_seg_core.train.matcher import HungarianMatcher


def _targets(gen):
    masks = torch.zeros(3, 32, 32)
    masks[0, :10, :10] = 1
    masks[1, 15:, :] = 1
    masks[2, :10, 20:] = 1
    return torch.tensor([0, 2, 1]), masks


def test_matcher_recovers_permutation():
    g = torch.Generator().manual_seed(0)
    labels, masks = _targets(g)
    q, c = 6, 3
    perm = torch.tensor([4, 0, 2])  # target t is predicted by query perm[t]
    mask_logits = torch.full((1, q, 32, 32), -10.0)
    cls = torch.zeros(1, q, c + 1)
    cls[0, :, -1] = 5.0
    for t, qi in enumerate(perm):
        mask_logits[0, qi] = masks[t] * 20 - 10
        cls[0, qi, labels[t]] = 10.0
    (qi, ti), = HungarianMatcher(num_points=256)(cls, mask_logits, [labels], [masks], g)
    assert dict(zip(ti.tolist(), qi.tolist())) == {0: 4, 1: 0, 2: 2}
    out = set_losses(cls, mask_logits, torch.full((1, q, 1), 0.0), [(qi, ti)], [labels], [masks], 3.0,
                     LossWeights(), 256, g)
    assert out["cls"] < 0.05
    wrong = set_losses(cls, mask_logits.flip(1), torch.zeros(1, q, 1), [(qi, ti)], [labels], [masks], 3.0,
                       LossWeights(), 256, g)
    # importance sampling puts 75 % of the points on mask borders, where even a perfect mask has BCE > 0
    assert wrong["mask"] > 5 * out["mask"] and wrong["dice"] > 10 * out["dice"]


def test_text_and_pair_losses_prefer_the_right_answer():
    e = torch.nn.functional.normalize(torch.eye(4)[:3], dim=1)
    good = contrastive_text_loss(e, torch.tensor([0, 1, 2]), e, 20.0)
    bad = contrastive_text_loss(e, torch.tensor([1, 2, 0]), e, 20.0)
    assert good < 0.01 < bad
    ids = torch.tensor([7, 8, 9])
    assert pair_embedding_loss(e, ids, e, ids) < pair_embedding_loss(e, ids, e.flip(0), ids)
    scores = torch.tensor([[5.0, 0.0, -1.0]])
    pos = torch.tensor([[True, False, False]])
    assert referring_retrieval_loss(scores, pos) < referring_retrieval_loss(scores, pos.roll(1, 1))


def test_attribute_negatives_swap_one_word_and_skip_the_batch_phrases():
    groups = [["red", "blue", "green"], ["small", "large"]]
    neg = attribute_negatives(["red box", "small blue ball", "blue box", "mug"], groups)
    assert neg == ["green box", "large blue ball", "small red ball", "small green ball"]  # "blue box" is given
    assert attribute_negatives(["red box"], []) == []


def test_attribute_negatives_make_the_contrastive_loss_harder():
    """A query embedding between "red box" and its negative "pink box" pays more once "pink box" is a column."""
    red, pink, ball = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0.8, 0.6, 0], [0, 0, 1.0]]), dim=1)
    q = torch.nn.functional.normalize(red + 0.5 * pink, dim=0)[None]
    batch_only = contrastive_text_loss(q, torch.tensor([0]), torch.stack([red, ball]), 20.0)
    with_negative = contrastive_text_loss(q, torch.tensor([0]), torch.stack([red, ball, pink]), 20.0)
    assert with_negative > batch_only + 0.1


@pytest.mark.parametrize("bad", [[["red"]], ["red", "blue"], [["red", "light blue"]], [["red", 3]], "red"])
def test_bad_negative_word_groups_are_refused(bad):
    with pytest.raises(ValueError, match="text_negative_words"):
        LossConfig(text_negative_words=bad)
