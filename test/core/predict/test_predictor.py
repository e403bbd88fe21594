"""OMGSegPredictor API on a real (random-weight) TINY model: shapes, coordinate handling, errors, thresholds.

Correctness of the fusion itself is covered by the golden tests (test_postprocess.py); here a real untrained
model checks that every task wires the cached features, vocabulary and thresholds through correctly. The text
tower is a shrunken open_clip text transformer with the TINY class-embedding width (256), so no MiniLM download.
"""
import numpy as np
import pytest
import torch

from omg_seg_core.config import TINY, TaskThresholds
from omg_seg_core.predict import build_predictor
from omg_seg_core.structures import masks_to_boxes
from omg_seg_core.text.clip_text import ClipTextEncoder

SMALL_TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
H, W = 200, 300  # not a multiple of 32, aspect ratio != long side box


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from omg_seg_core.model.omg_seg import build_model

    mp = pytest.MonkeyPatch()
    mp.setenv("OMG_SEG_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)
    model = build_model(TINY, pretrained_backbone=False)
    enc = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=TINY.class_embed_dim)
    p = build_predictor(model, text_encoder=enc, vocabulary="robot_workspace")
    rng = np.random.RandomState(0)
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (rng.rand(1, 1, 3) * 255).astype(np.uint8)
    img[40:120, 60:160] = (220, 30, 30)
    img[100:180, 180:280] = (30, 30, 220)
    p.set_image(img)
    yield p
    mp.undo()


def test_set_image_rejects_bad_images(predictor):
    p = predictor
    with pytest.raises(TypeError, match="float32"):
        p.set_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(10, 10\)"):
        p.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        p.set_image(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(TypeError, match="list"):
        p.set_image([[0, 0, 0]])
    assert p.has_image  # a rejected image leaves the cached one untouched


def test_tasks_need_an_image():
    from omg_seg_core.model.omg_seg import build_model

    torch.manual_seed(1)
    enc = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=TINY.class_embed_dim)
    p = build_predictor(build_model(TINY, pretrained_backbone=False), text_encoder=enc,
                        vocabulary={"things": ["box"], "stuff": ["floor"]})
    assert not p.has_image
    for call in (p.panoptic, p.instances, p.semantic, lambda: p.prompt(points=[[1, 1]]), lambda: p.text("box")):
        with pytest.raises(RuntimeError, match="set_image"):
            call()


def test_closed_vocabulary_tasks_at_original_resolution(predictor):
    p = predictor
    assert p.image_size == (H, W) and {"preprocess", "image_graph"} <= set(p.last_timings)
    pan = p.panoptic()
    assert pan.masks.shape[1:] == (H, W) and pan.task == "panoptic"
    assert pan.masks.sum(0).max() <= 1  # panoptic segments never overlap
    assert all(0 <= c < len(p.class_names) for c in pan.class_ids)
    assert pan.class_names == [p.class_names[c] for c in pan.class_ids]
    assert pan.embeddings.shape == (len(pan), TINY.embed_dim)

    inst = p.instances()
    assert inst.masks.shape[1:] == (H, W) and np.all(np.diff(inst.scores) <= 0)
    assert np.all(inst.class_ids < p.vocabulary.num_things) and inst.is_thing.all()
    assert len(inst) <= p.thresholds.max_per_image

    sem = p.semantic()
    assert sem.masks.sum(0).min() == 1 and sem.masks.sum(0).max() == 1  # a partition
    assert sem.semantic_map().max() < len(p.class_names)
    assert "postprocess" in p.last_timings


def test_thresholds_are_used(predictor):
    p = predictor
    old = p.thresholds
    try:
        p.set_thresholds(max_per_image=5)
        assert len(p.instances()) <= 5
        p.set_thresholds(object_mask_thr=0.999999)
        assert len(p.panoptic()) == 0
        with pytest.raises(ValueError, match="no_such_knob"):
            p.set_thresholds(no_such_knob=1)
    finally:
        p.thresholds = old


def test_point_equals_its_pseudo_box(predictor):
    """A point is the box (x-3, y-3, x+3, y+3) in RESIZED pixels: giving that box in original pixels must give
    the same mask, which checks the original -> resized scaling of both prompt types."""
    p = predictor
    from omg_seg_core.predict.preprocess import resized_shape

    h, w = resized_shape((H, W), p.long_side)
    sx, sy = w / W, h / H
    x, y = 100.0, 80.0
    box = [(x * sx - 3) / sx, (y * sy - 3) / sy, (x * sx + 3) / sx, (y * sy + 3) / sy]
    saved = p.thresholds
    # the prompt decoder itself (auto may pick object queries), masks not refined by the prompts' geometry
    p.set_thresholds(prompt_source="decoder", box_prompt_margin=-1, click_connected=False)
    try:
        a = p.prompt(points=[[x, y]])
        b = p.prompt(boxes=[box])
    finally:
        p.thresholds = saved
    assert len(a) == len(b) == 1 and a.masks.shape == (1, H, W)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    assert 0 < a.scores[0] < 1 and a.extra["prompt_kind"] == ["point"]


def test_prompt_order_and_negative_clicks(predictor):
    p = predictor
    p.set_thresholds(edge_refine_radius=0)  # the image-guided filter may move borders either way
    try:
        out = p.prompt(points=[[50, 50], [250, 150], [120, 60]], point_labels=[1, 0, 1], boxes=[[10, 10, 200, 190]])
        assert len(out) == 3 and out.extra["prompt_kind"] == ["point", "point", "box"]
        assert out.extra["prompt_source"] == ["decoder"] * 3  # negative clicks refine the prompt decoder's masks
        p.set_thresholds(prompt_source="decoder")
        plain = p.prompt(points=[[50, 50], [120, 60]], boxes=[[10, 10, 200, 190]])
    finally:
        p.set_thresholds(prompt_source="auto", edge_refine_radius=None)
    assert np.all(out.masks <= plain.masks)  # a negative click only removes pixels
    np.testing.assert_allclose(out.scores, plain.scores, rtol=1e-5)


def test_box_prompt_masks_stay_in_their_grown_box(predictor):
    p = predictor
    boxes = np.array([[60, 40, 160, 120], [0, 0, 40, 30]], np.float32)
    saved = p.thresholds
    assert saved.box_prompt_margin == 0.1  # the default
    try:
        p.set_thresholds(prompt_source="decoder", box_prompt_margin=-1)  # official: whole masks
        full = p.prompt(boxes=boxes)
        p.set_thresholds(box_prompt_margin=0.15)
        cut = p.prompt(boxes=boxes)
    finally:
        p.thresholds = saved
    inside = np.zeros((2, H, W), bool)
    inside[0, 28:132, 45:175] = True  # 0.15 x (100, 80) = (15, 12) px per side
    inside[1, 0:35, 0:46] = True
    np.testing.assert_array_equal(cut.masks, full.masks & inside)
    assert (full.masks & ~inside).any()  # the random model's masks do leak: the crop was exercised
    np.testing.assert_array_equal(cut.boxes, masks_to_boxes(cut.masks))  # boxes recomputed from the cut masks


def test_click_masks_keep_the_clicked_part(predictor):
    from scipy import ndimage

    p = predictor
    clicks = np.array([[100, 80], [230, 140], [20, 190]], np.float32)
    saved = p.thresholds
    try:
        p.set_thresholds(prompt_source="decoder", click_connected=False)  # official: whole masks
        full = p.prompt(points=clicks)
        p.set_thresholds(click_connected=True)
        cut = p.prompt(points=clicks)
    finally:
        p.thresholds = saved
    assert saved.click_connected  # the default
    assert np.all(cut.masks <= full.masks)
    for k, (x, y) in enumerate(clicks.astype(int)):
        if full.masks[k, y, x]:
            labels, n = ndimage.label(cut.masks[k], structure=np.ones((3, 3)))
            assert n == 1 and cut.masks[k, y, x]
        else:
            np.testing.assert_array_equal(cut.masks[k], full.masks[k])
    np.testing.assert_array_equal(cut.boxes, masks_to_boxes(cut.masks))


def test_negative_click_rule():
    """Pixels leave a positive mask where the negative prompt's mask is foreground and stronger."""
    from omg_seg_core.predict.postprocess import prompt_postprocess
    from omg_seg_core.predict.preprocess import ImageMeta

    meta = ImageMeta((8, 8), (8, 8), (8, 8))
    pos = torch.full((1, 2, 2), 5.0)                      # stride-4 logits: everything foreground
    neg = torch.tensor([[[9.0, -9.0], [2.0, -9.0]]])      # strong at top-left, weak (2 < 5) at bottom-left
    seg = prompt_postprocess(pos, torch.zeros(1, 1), meta, negative_mask_logits=neg)
    kept = seg.masks[0]
    assert not kept[0, 0] and kept[7, 0] and kept[0, 7] and kept[7, 7]
    assert prompt_postprocess(pos, torch.zeros(1, 1), meta).masks[0].all()


@pytest.mark.parametrize("kw, match", [
    (dict(points=[[W + 5, 10]]), "outside"),
    (dict(points=[[-1, 10]]), "outside"),
    (dict(points=[[np.nan, 10]]), "non-finite"),
    (dict(points=[[1, 2, 3]]), r"\[N, 2\]"),
    (dict(points=[[10, 10]], point_labels=[2]), r"\[2\]"),
    (dict(points=[[10, 10], [20, 20]], point_labels=[1]), "1 values for 2 points"),
    (dict(points=[[10, 10]], point_labels=[0]), "positive"),
    (dict(boxes=[[50, 50, 40, 60]]), "x1 < x2"),
    (dict(boxes=[[W, 0, W + 10, 10]]), "outside"),
    (dict(boxes=[[0, 0, np.inf, 10]]), "non-finite"),
    (dict(), "got none"),
])
def test_prompt_validation(predictor, kw, match):
    with pytest.raises(ValueError, match=match):
        predictor.prompt(**kw)


def test_text_requests(predictor):
    p = predictor
    out = p.text("Segment the red box, please!", max_results=3)
    assert out.extra["phrase"] == "red box" and out.task == "text"
    assert 1 <= len(out) <= 3 and np.all(np.diff(out.scores) <= 0)
    assert out.masks.shape[1:] == (H, W) and out.masks.reshape(len(out), -1).any(1).all()
    assert out.class_names == ["red box"] * len(out) and (out.class_ids == -1).all()
    assert len(p.text("box")) == p.thresholds.text_max_results
    assert {"text_encode", "text_score"} <= set(p.last_timings)
    for bad in ("", "   ", "segment the", "please find"):
        with pytest.raises(ValueError, match="no object description"):
            p.text(bad)
    with pytest.raises(ValueError, match="max_results"):
        p.text("box", max_results=0)


def test_set_vocabulary_switches_classes(predictor):
    p = predictor
    old = p.vocabulary
    try:
        v = p.set_vocabulary(["apple,apples", "banana"], ["table"])
        assert p.class_names == ["apple", "banana", "table"] and v.num_things == 2
        assert set(p.panoptic().class_ids.tolist()) <= {0, 1, 2}
        assert set(p.semantic().class_ids.tolist()) <= {0, 1, 2}
        with pytest.raises(FileNotFoundError, match="nope_vocab"):
            p.set_vocabulary("nope_vocab")
        assert p.class_names == ["apple", "banana", "table"]  # failed switch keeps the active vocabulary
    finally:
        p.set_vocabulary(old)


def test_set_vocabulary_with_given_embeddings(predictor):
    p = predictor
    old = p.vocabulary
    try:
        e = torch.nn.functional.normalize(torch.randn(2, 3, TINY.class_embed_dim), dim=-1)
        p.set_vocabulary(["a", "b"], embeddings=e)
        assert p.class_names == ["a", "b"] and torch.equal(p._text_embed.cpu(), e)
        with pytest.raises(ValueError, match=r"\(2, 3, 7\)"):
            p.set_vocabulary(["a", "b"], embeddings=torch.zeros(2, 3, 7))
    finally:
        p.set_vocabulary(old)


def test_unknown_backend_and_dtype(predictor):
    from omg_seg_core.runtime.select import make_backend
    from omg_seg_core.runtime.torch_backend import resolve_dtype

    with pytest.raises(ValueError, match="no_such_backend"):
        make_backend("no_such_backend", predictor.model)
    with pytest.raises(ValueError, match="float64"):
        resolve_dtype("float64")


def test_predictor_takes_a_built_model(predictor):
    """OMGSegPredictor(model) takes built pieces; names and checkpoints go through build_predictor."""
    from omg_seg_core.predict import OMGSegPredictor

    with pytest.raises(TypeError, match="build_predictor"):
        OMGSegPredictor("omg_seg_tiny")
    p = OMGSegPredictor(predictor.model, text_encoder=predictor.text_encoder, vocabulary={"things": ["a"]})
    assert p.backend.name == "torch" and p.class_names == ["a"] and p.long_side == TINY.long_side


def test_predictor_from_checkpoint_uses_its_vocabulary_and_minilm(tmp_path, monkeypatch):
    """The default loading path of the node: our checkpoint format -> load_model -> the checkpoint's own
    vocabulary and the MiniLM text encoder built on the checkpoint's learned projection (real MiniLM, offline)."""
    from omg_seg_core.model.checkpoint import save_checkpoint
    from omg_seg_core.model.omg_seg import build_model
    from omg_seg_core.text.sentence_text import TextProjection

    monkeypatch.setenv("OMG_SEG_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(2)
    m = build_model(TINY, pretrained_backbone=False)
    m.text_projection = TextProjection(TINY.class_embed_dim)
    path = save_checkpoint(tmp_path / "tiny.pth", m, vocabulary={"things": ["box,cube", "ball"], "stuff": ["floor"]})
    p = build_predictor(path, long_side=160)
    assert p.class_names == ["box", "ball", "floor"] and p.vocabulary.num_things == 2
    assert p.text_encoder.name.startswith("minilm_l6")
    torch.testing.assert_close(p.text_encoder.projection.linear.weight, m.text_projection.linear.weight)
    p.set_image(np.full((90, 120, 3), 127, np.uint8))
    assert p.panoptic().masks.shape[1:] == (90, 120)
    assert len(p.text("the red box")) <= 1
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_predictor(tmp_path / "missing.pth")


def test_checkpoint_thresholds_with_a_bad_entry_name_the_file(tmp_path):
    from omg_seg_core.model.checkpoint import save_checkpoint
    from omg_seg_core.model.omg_seg import build_model
    from omg_seg_core.text.sentence_text import TextProjection

    torch.manual_seed(2)
    m = build_model(TINY, pretrained_backbone=False)
    m.text_projection = TextProjection(TINY.class_embed_dim)
    vocab = {"things": ["box"], "stuff": ["floor"]}
    for bad in ({"iou_threshold": 0.6}, [0.6]):
        path = save_checkpoint(tmp_path / "bad.pth", m, vocabulary=vocab, meta={"thresholds": bad})
        with pytest.raises(ValueError, match=r"bad\.pth: meta\.thresholds"):
            build_predictor(path, long_side=64)


def test_shipped_model_starts_from_its_tuned_iou_thr():
    """models/omg_seg_tiny.pth records iou_thr 0.6 (tuned on held-out seed 21, MODEL_CARD); everything else is
    the official OMG-Seg test config."""
    from dataclasses import asdict

    from omg_seg_core.config import default_checkpoint_path

    p = build_predictor(default_checkpoint_path("omg_seg_tiny"))
    got, official = asdict(p.thresholds), asdict(TaskThresholds())
    assert got.pop("iou_thr") == 0.6 and official.pop("iou_thr") == 0.8
    assert got == official


class _RegionBackbone(torch.nn.Module):
    """A small backbone WITH a CLIP-style region head (mask-pooled stride-32 features -> linear), so the text()
    ensemble path runs without building the 200M ConvNeXt-L. Same interface as clip_convnext's backbone."""

    has_region_embed = True

    def __init__(self, inner, dim):
        super().__init__()
        self.inner, self.channels = inner, inner.channels
        self.proj = torch.nn.Linear(inner.channels[-1], dim)

    def forward(self, x):
        return self.inner(x)

    def region_embed(self, f32, mask_logits):
        m = torch.nn.functional.interpolate(mask_logits[None].float(), size=f32.shape[-2:], mode="bilinear")[0] > 0
        pooled = (m[:, None] * f32[0][None]).sum((2, 3)) / m.sum((1, 2)).clamp_min(1)[:, None]
        return self.proj(pooled)


def test_text_uses_clip_region_ensemble_when_the_model_has_one():
    from dataclasses import replace

    from omg_seg_core.model.backbones.base import build_backbone
    from omg_seg_core.model.omg_seg import build_model
    from omg_seg_core.predict.text_query import phrase_scores

    cfg = replace(TINY, has_clip_head=True)
    torch.manual_seed(3)
    bb = _RegionBackbone(build_backbone(cfg.backbone, pretrained=False), cfg.class_embed_dim)
    model = build_model(cfg, backbone=bb)
    enc = ClipTextEncoder(text_cfg=SMALL_TEXT, embed_dim=cfg.class_embed_dim)
    p = build_predictor(model, text_encoder=enc, vocabulary={"things": ["box", "ball"], "stuff": ["floor"]})
    p.set_image((np.random.RandomState(1).rand(96, 128, 3) * 255).astype(np.uint8))
    f = p.features
    assert f.clip_feat is not None
    out = p.text("find the red box", max_results=p.cfg.num_queries)
    phrase = p.phrase_embedding("red box")
    with torch.no_grad():
        region = model.region_embed(f, f.mask_logits[0])
    with_clip = phrase_scores(f.class_embed[0], p._text_embed, phrase, cfg.logit_scale, None, region,
                              cfg.ensemble_alpha_seen, cfg.ensemble_alpha_unseen)
    head_only = phrase_scores(f.class_embed[0], p._text_embed, phrase, cfg.logit_scale)
    np.testing.assert_allclose(out.scores, with_clip[out.query_index].numpy(), rtol=1e-5)
    assert not torch.allclose(with_clip, head_only)
