"""Vocabulary parsing, the ViLD-template classifier math, its disk cache, and the CLIP text-tower loader.

The CLIP tower is built with a shrunken open_clip config (2 layers, width 64) so the test stays cheap; the code path
(build text tower only -> load the text keys of a full open_clip CLIP state_dict) is the one the 768-wide tower uses.
"""
import logging

import pytest
import torch

from omg_seg_core.text.clip_text import ClipTextEncoder
from omg_seg_core.text.vocabulary import (VILD_TEMPLATES, Vocabulary, class_embeddings, embed_synonyms,
                                          load_vocabulary, split_synonyms)

SMALL_TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)


@pytest.fixture(scope="module")
def clip_pair(tmp_path_factory):
    """A small random open_clip CLIP, its state_dict saved as a weights file, and our text encoder loaded from it."""
    import open_clip

    torch.manual_seed(0)
    clip = open_clip.CLIP(embed_dim=32, vision_cfg=dict(layers=1, width=32, patch_size=16, image_size=32,
                                                        head_width=16), text_cfg=SMALL_TEXT).eval()
    path = tmp_path_factory.mktemp("clip") / "open_clip_small.bin"
    torch.save(clip.state_dict(), path)
    enc = ClipTextEncoder(weights=path, text_cfg=SMALL_TEXT, embed_dim=32)
    return clip, enc, path


def test_split_synonyms_follows_official_rules():
    assert split_synonyms("couch,sofa") == ["couch", "sofa"]
    assert split_synonyms("Traffic_Light") == ["traffic light"]
    assert split_synonyms("cup_or_mug/Glass") == ["cup", "mug", "glass"]
    assert split_synonyms("person, people ") == ["person", "people"]


def test_coco_panoptic_vocabulary_shipped():
    v = load_vocabulary("coco_panoptic")
    assert (v.num_things, len(v.stuff), v.num_classes) == (80, 53, 133)
    assert v.display_names[0] == "person" and v.display_names[-1] == "rug"
    assert v.is_thing(79) and not v.is_thing(80)
    assert max(len(s) for s in v.synonyms()) == 17  # person has 17 synonyms


def test_vocabulary_errors_name_the_value(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_vocab"):
        load_vocabulary("no_such_vocab")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_vocabulary(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="'cat'"):
        Vocabulary(("cat", "cat"))
    with pytest.raises(ValueError, match="'a,,b'"):
        Vocabulary(("a,,b",))
    with pytest.raises(TypeError, match="'box'"):
        Vocabulary("box")
    bad = tmp_path / "bad.yaml"
    bad.write_text("just a string\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_vocabulary(bad)


def test_clip_text_tower_matches_open_clip(clip_pair):
    clip, enc, _ = clip_pair
    phrases = ["a photo of a cat.", "There is a red box in the scene"]
    ref = clip.encode_text(open_clip_tokens(phrases), normalize=True)
    out = enc.encode(phrases)
    assert out.shape == (2, 32)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2))


def open_clip_tokens(phrases):
    import open_clip

    return open_clip.get_tokenizer("convnext_large_d_320")(phrases)


def test_clip_text_loader_rejects_wrong_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        ClipTextEncoder(weights=tmp_path / "nope.bin", text_cfg=SMALL_TEXT, embed_dim=32)
    with pytest.raises(ValueError, match="no text-tower keys"):
        ClipTextEncoder(weights={"visual.proj": torch.zeros(1)}, text_cfg=SMALL_TEXT, embed_dim=32)
    wide = dict(SMALL_TEXT, width=128)  # shapes of a different tower
    torch.manual_seed(0)
    other = ClipTextEncoder(text_cfg=wide, embed_dim=32).model.state_dict()
    with pytest.raises(RuntimeError, match="size mismatch"):
        ClipTextEncoder(weights=other, text_cfg=SMALL_TEXT, embed_dim=32)
    with pytest.raises(ValueError, match="invalid phrase ''"):
        ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=32).encode(["ok", ""])


def test_random_towers_get_distinct_cache_names():
    torch.manual_seed(0)
    a = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=32)
    torch.manual_seed(1)
    b = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=32)
    c = ClipTextEncoder(weights=a.model.state_dict(), text_cfg=SMALL_TEXT, embed_dim=32)
    assert a.name != b.name and a.name.endswith(c.name.split("-dict")[-1])


def test_class_embeddings_math_and_padding(clip_pair):
    _, enc, _ = clip_pair
    vocab = Vocabulary(("couch,sofa", "cup"), ("sky",))
    emb = embed_synonyms(enc, vocab.synonyms())
    assert emb.shape == (3, 2, 32)
    # per synonym: mean of the normalised template embeddings, normalised again
    t = enc.encode([tpl.format("sofa") for tpl in VILD_TEMPLATES])
    torch.testing.assert_close(emb[0, 1], torch.nn.functional.normalize(t.mean(0), dim=0))
    # classes with fewer synonyms are padded with their FIRST synonym
    torch.testing.assert_close(emb[1, 1], emb[1, 0])
    assert not torch.allclose(emb[0, 0], emb[0, 1])


def test_class_embeddings_cache_hit_and_corrupt_recompute(clip_pair, tmp_path, caplog):
    _, enc, _ = clip_pair
    vocab = Vocabulary(("box,cube",), ("floor",))
    first = class_embeddings(enc, vocab, cache_root=tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith(enc.name.replace("/", "_"))
    # a different vocabulary gets a different file
    class_embeddings(enc, Vocabulary(("box",), ("floor",)), cache_root=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2
    # cache hit returns the stored tensor, even if it was altered on disk (proves it is read, not recomputed)
    torch.save(first * 0.5, files[0])
    torch.testing.assert_close(class_embeddings(enc, vocab, cache_root=tmp_path), first * 0.5)
    files[0].write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        again = class_embeddings(enc, vocab, cache_root=tmp_path)
    assert "unreadable" in caplog.text
    torch.testing.assert_close(again, first)
    torch.testing.assert_close(torch.load(files[0], weights_only=True), first)
