"""Free-text requests: phrase extraction and the class-head / CLIP-ensemble phrase scores."""
import pytest
import torch
import torch.nn.functional as F

from omg_seg_core.predict.text_query import extract_phrase, phrase_scores


@pytest.mark.parametrize("query, phrase", [
    ("segment the red box", "red box"),
    ("Please show me the blue ball!", "blue ball"),
    ("find all mugs, please", "mugs"),
    ("can you segment a coffee cup on the table", "coffee cup on the table"),
    ("red_box", "red box"),
    ("box", "box"),
])
def test_extract_phrase(query, phrase):
    assert extract_phrase(query) == phrase


@pytest.mark.parametrize("bad", ["", "  ", "segment the", "please", "!!"])
def test_extract_phrase_rejects_empty(bad):
    with pytest.raises(ValueError, match="no object description"):
        extract_phrase(bad)
    with pytest.raises(ValueError, match="123"):
        extract_phrase(123)


def _unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_phrase_scores_rank_matching_queries_first():
    # E = 3: vocabulary "ball" along y; phrase "red box" along x; a "no object" query points away from both
    vocab = _unit([0.0, 1.0, 0.0])[:, None, :]          # [C=1, K=1, E]
    phrase = _unit([1.0, 0.0, 0.2])[0]
    queries = _unit([1.0, 0.0, 0.1],                    # the red box
                    [0.2, 1.0, 0.0],                    # a ball
                    [-1.0, -1.0, 0.0])                  # no object (negative cosine with every class)
    s = phrase_scores(queries, vocab, phrase, logit_scale=torch.log(torch.tensor(100.0)).item())
    assert s.shape == (3,) and s[0] > 0.9 and s[1] < 0.1 and s[2] < 0.1
    # a vocabulary class identical to the phrase is dropped instead of splitting the probability
    both = torch.cat([vocab, phrase.reshape(1, 1, -1)])
    s_dup = phrase_scores(queries, both, phrase, 4.6052, duplicate_class=1)
    torch.testing.assert_close(s_dup, s)
    s_split = phrase_scores(queries, both, phrase, 4.6052)
    assert s_split[0] < 0.6  # without dropping, the twin class takes about half


def test_phrase_scores_geometric_ensemble_uses_region_embeddings():
    vocab = _unit([0.0, 1.0, 0.0])[:, None, :]
    phrase = _unit([1.0, 0.0, 0.0])[0]
    queries = _unit([0.7, 0.7, 0.0], [0.7, 0.7, 0.0])  # the class head cannot tell the two apart
    region = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])  # CLIP sees query 0 as the phrase (unnormalised)
    s = phrase_scores(queries, vocab, phrase, 4.6052, region_embed=region, alpha_seen=0.4, alpha_unseen=0.8)
    assert s[0] > 0.9 and s[1] < 0.1
    s_no_clip = phrase_scores(queries, vocab, phrase, 4.6052)
    torch.testing.assert_close(s_no_clip[0], s_no_clip[1])
