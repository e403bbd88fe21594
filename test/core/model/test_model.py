"""OMGSeg model behaviour on the small config (TINY): shapes of the two graphs, prompt isolation, batching,
training forward with gradients, attention-mask semantics, input errors, dtype, and ONNX exportability."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tolerances as tol
from omg_seg_core.config import TINY, ModelConfig
from omg_seg_core.model.backbones.base import build_backbone
from omg_seg_core.model.classifier import classify
from omg_seg_core.model.omg_seg import build_model
from omg_seg_core.model.pixel_decoder import MSDeformAttnPixelDecoder, fewer_encoder_levels, fewer_encoder_points
from omg_seg_core.model.position_encoding import sine_encoding_2d, sine_encoding_3d
from omg_seg_core.model.transformer_decoder import MultiheadAttention, unblock_full_rows
from omg_seg_core.runtime.backend import ImageFeatures


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(TINY)


@pytest.fixture(scope="module")
def image():
    torch.manual_seed(1)
    return torch.randn(1, 3, 96, 128)


def test_forward_image_shapes(tiny, image):
    with torch.no_grad():
        f = tiny.forward_image(image)
    q, d, e = TINY.num_queries, TINY.embed_dim, TINY.class_embed_dim
    assert f.mask_features.shape == (1, d, 24, 32)
    assert [tuple(m.shape) for m in f.memory] == [(1, d, 3, 4), (1, d, 6, 8), (1, d, 12, 16)]
    assert f.mask_logits.shape == (1, q, 24, 32) and f.iou_logits.shape == (1, q, 1)
    assert f.class_embed.shape == (1, q, e) and f.query_feat.shape == (1, q, d)
    assert torch.allclose(f.class_embed.norm(dim=-1), torch.ones(1, q), atol=1e-5)
    assert f.clip_feat is None and tiny.region_embed(f, f.mask_logits[0]) is None
    assert all(p.dtype == torch.float32 for p in tiny.parameters())


def test_prompts_are_independent_of_each_other(tiny, image):
    """Each prompt query sees only itself in self-attention: its outputs do not depend on the other prompts."""
    boxes = torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 5.0, 120.0, 40.0], [47.0, 47.0, 53.0, 53.0]])
    with torch.no_grad():
        f = tiny.forward_image(image)
        together = tiny.forward_prompt(f, boxes, (90, 128))
        alone = [tiny.forward_prompt(f, boxes[i:i + 1], (90, 128)) for i in range(3)]
    assert together.mask_logits.shape == (1, 3, 24, 32) and together.class_embed.shape == (1, 3, TINY.class_embed_dim)
    for i, a in enumerate(alone):
        assert torch.allclose(together.mask_logits[:, i], a.mask_logits[:, 0], atol=1e-4)
        assert torch.allclose(together.query_feat[:, i], a.query_feat[:, 0], atol=1e-5)
    # different boxes give different masks (the prompt is actually used)
    assert (together.mask_logits[:, 0] - together.mask_logits[:, 1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"\[P, 4\]"):
        tiny.forward_prompt(f, boxes[:, :2], (90, 128))
    with pytest.raises(ValueError, match="image_size"):
        tiny.forward_prompt(f, boxes, (0, 128))


def test_batch_equals_single_images(tiny):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = tiny.forward_train(x)
        one = [tiny.forward_train(x[i:i + 1]) for i in range(2)]
    for i in range(2):
        assert torch.allclose(both.mask_logits[-1][i], one[i].mask_logits[-1][0], atol=1e-4)
        assert torch.allclose(both.class_embed[-1][i], one[i].class_embed[-1][0], atol=1e-5)


def test_training_forward_all_layers_and_gradients(tiny):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    tiny.train()
    try:
        out = tiny.forward_train(x, boxes=torch.tensor([[[4.0, 4, 30, 30]], [[20.0, 10, 60, 50]]]),
                                 image_size=(64, 64))
        n = TINY.num_decoder_layers + 1
        assert len(out.mask_logits) == len(out.class_embed) == len(out.iou_logits) == n
        assert out.mask_logits[0].shape == (2, 1, 16, 16) and out.cls_logits is None
        text = F.normalize(torch.randn(5, 2, TINY.class_embed_dim), dim=-1)
        loss = sum(classify(c, text).logsumexp(-1).mean() + m.sigmoid().mean() + i.mean()
                   for c, m, i in zip(out.class_embed, out.mask_logits, out.iou_logits))
        loss.backward()
        grads = {n: p.grad for n, p in tiny.named_parameters() if n.startswith(("head.", "pixel_decoder."))}
        # parameters of every part receive gradients (prompt path: learned query_feat/query_embed are unused)
        for name in ("head.pos_linear.weight", "head.mask_tokens.weight", "head.cls_proj.4.weight",
                     "head.transformer_decoder.layers.2.cross_attn.attn.in_proj_weight",
                     "pixel_decoder.encoder.layers.1.self_attn.sampling_offsets.weight", "pixel_decoder.mask_feature.weight"):
            assert grads[name] is not None and grads[name].abs().sum() > 0, name
    finally:
        tiny.zero_grad(set_to_none=True)
        tiny.eval()


def test_attention_masks_and_full_row_rule():
    torch.manual_seed(4)
    mha = MultiheadAttention(32, 4).eval()
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    ref.in_proj_weight.data.copy_(mha.attn.in_proj_weight)
    ref.in_proj_bias.data.copy_(mha.attn.in_proj_bias)
    ref.out_proj.load_state_dict(mha.attn.out_proj.state_dict())
    q, k = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    blocked = torch.rand(2, 5, 7) > 0.5
    blocked[0, 1] = True  # a fully blocked row
    fixed = unblock_full_rows(blocked)
    assert not fixed[0, 1].any() and torch.equal(fixed[1], blocked[1] & ~blocked[1].all(-1, keepdim=True))
    with torch.no_grad():
        ours = mha(q, k, k, blocked=fixed)
        theirs = q + ref(q, k, k, attn_mask=fixed.repeat_interleave(4, 0))[0]
    assert torch.allclose(ours, theirs, atol=1e-5)
    # without the fix a fully blocked row would be NaN in torch; ours stays finite either way
    with torch.no_grad():
        assert torch.isfinite(mha(q, k, k, blocked=blocked)).all()


def test_position_encodings():
    p2 = sine_encoding_2d(4, 6, 8)
    p3 = sine_encoding_3d(4, 6, 8)
    assert p2.shape == p3.shape == (16, 4, 6) and p2.dtype == torch.float32
    # the z term of a single frame is not zero (official quirk): a constant per channel
    dz = p3 - p2
    assert torch.allclose(dz, dz[:, :1, :1].expand_as(dz), atol=1e-5) and dz.abs().max() > 0.1
    # first half encodes y (constant along x), second half x (constant along y)
    assert torch.allclose(p2[:8], p2[:8, :, :1].expand(8, 4, 6)) and torch.allclose(p2[8:], p2[8:, :1].expand(8, 4, 6))


def test_classify_semantics():
    x = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    text = torch.tensor([[[1.0, 0, 0], [0, 0, 1.0]], [[0, 0, 1.0], [0, 0.6, 0.8]]])  # C=2, K=2
    logits = classify(x, text, np.log(100.0))
    assert logits.shape == (2, 3)
    assert torch.allclose(logits, torch.tensor([[100.0, 0.0, 0.0], [0.0, 60.0, 0.0]]), atol=1e-3)
    with pytest.raises(ValueError, match=r"\[C, K, E\]"):
        classify(x, text[0])
    with pytest.raises(ValueError, match="dim 4"):
        classify(x, torch.zeros(2, 1, 4))


def test_open_vocab_ensemble():
    """Official open_voc_inference: void probability kept, alpha = 0 / invalid masks give the query probabilities,
    and a hand-computed two-class case."""
    from omg_seg_core.model.classifier import open_vocab_ensemble

    torch.manual_seed(5)
    q, k = torch.randn(4, 6), torch.randn(4, 6)
    seen = torch.tensor([1, 1, 0, 0, 1])
    out = open_vocab_ensemble(q, k, seen, torch.tensor([True, True, False, True]))
    p = q.softmax(-1)
    assert torch.allclose(out.exp()[:, -1], p[:, -1] + 1e-8, atol=1e-6)
    assert torch.allclose(out.exp()[2], p[2] + 1e-8, atol=1e-6)  # invalid mask -> query probabilities
    assert torch.allclose(open_vocab_ensemble(q, k, seen, torch.ones(4, dtype=torch.bool), 0.0, 0.0).exp(), p + 1e-8,
                          atol=1e-6)
    # two classes, no void mass: q = (0.8, 0.2), k = (0.2, 0.8), seen -> a = 0.5 -> equal mix (0.5, 0.5)
    ql = torch.tensor([[np.log(0.8), np.log(0.2), -1e4]])
    kl = torch.tensor([[np.log(0.2), np.log(0.8), 0.0]])
    two = open_vocab_ensemble(ql, kl, torch.tensor([1, 1]), torch.tensor([True]), alpha=0.5).exp()
    assert torch.allclose(two, torch.tensor([[0.5, 0.5, 0.0]]), atol=1e-6)


def test_input_and_config_errors(tiny):
    with pytest.raises(ValueError, match=r"\(100, 128\)"):
        tiny.forward_image(torch.zeros(1, 3, 100, 128))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        tiny.forward_image(torch.zeros(3, 64, 64))
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        build_backbone("resnet9000")
    bad = ModelConfig.from_dict({**TINY.to_dict(), "backbone_channels": (24, 40, 112, 321)})
    with pytest.raises(ValueError, match="321"):
        build_model(bad)
    with pytest.raises(ValueError, match=rf"text_embed must be \[C, K, {TINY.class_embed_dim}\]"):
        tiny.head.set_text_embed(torch.zeros(3, 768))


def test_bfloat16_runs_and_tracks_fp32(tiny, image):
    """dtype is an option: a bf16 copy runs on the CPU and stays close to fp32 (fp16 needs a GPU: see below)."""
    import copy

    m16 = copy.deepcopy(tiny).to(torch.bfloat16)
    with torch.no_grad():
        a = tiny.forward_image(image)
        b = m16.forward_image(image.to(torch.bfloat16))
    assert b.mask_logits.dtype == torch.bfloat16 and torch.isfinite(b.mask_logits.float()).all()
    cos = F.cosine_similarity(a.class_embed.flatten(), b.class_embed.float().flatten(), dim=0)
    assert cos > 0.98


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 inference needs a CUDA GPU")
def test_fp16_cuda_matches_fp32(tiny, image):
    import copy

    m = copy.deepcopy(tiny).cuda().half()
    with torch.no_grad():
        a = tiny.forward_image(image)
        b = m.forward_image(image.cuda().half())
    assert torch.isfinite(b.mask_logits).all()
    assert F.cosine_similarity(a.class_embed.flatten(), b.class_embed.float().cpu().flatten(), dim=0) > 0.99


def test_onnx_export_of_both_graphs_matches(tiny, image, tmp_path):
    ort = pytest.importorskip("onnxruntime")

    class ImageGraph(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            f = self.m.forward_image(x)
            return (f.mask_features, *f.memory, f.mask_logits, f.class_embed, f.iou_logits, f.query_feat)

    class PromptGraph(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, mf, m0, m1, m2, boxes, hw):
            o = self.m.forward_prompt(ImageFeatures(mf, [m0, m1, m2], mf, mf, mf, mf), boxes, hw)
            return o.mask_logits, o.class_embed, o.iou_logits, o.query_feat

    boxes = torch.tensor([[10.0, 12.0, 60.0, 70.0], [47.0, 47.0, 53.0, 53.0]])
    hw = torch.tensor([90.0, 128.0])
    with torch.no_grad():
        ref_img = ImageGraph(tiny).eval()(image)
        ref_prompt = PromptGraph(tiny).eval()(*ref_img[:4], boxes, hw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ImageGraph(tiny).eval(), (image,), tmp_path / "img.onnx", opset_version=17, dynamo=False)
        torch.onnx.export(PromptGraph(tiny).eval(), (*ref_img[:4], boxes, hw), tmp_path / "prompt.onnx",
                          opset_version=17, dynamo=False)
    tiny.eval()
    for path, inputs, ref in (("img.onnx", (image,), ref_img), ("prompt.onnx", (*ref_img[:4], boxes, hw), ref_prompt)):
        sess = ort.InferenceSession(str(tmp_path / path), providers=["CPUExecutionProvider"])
        outs = sess.run(None, {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)})
        for o, r in zip(outs, ref):
            assert np.abs(o - r.numpy()).max() < 1e-3, path


def _spread_sampling(model, silent: tuple) -> None:
    """Random sampling offsets (not the ring init: each level and point gets its own) and attention weights in
    every deformable encoder layer of `model`; the attention logits at `silent`, an index into their
    [heads, levels, points] layout, are set to -1e4, so those samples weigh exp(-1e4) = 0."""
    layout = (model.cfg.num_heads, model.cfg.num_encoder_levels, model.cfg.encoder_num_points)
    with torch.no_grad():
        for layer in model.pixel_decoder.encoder.layers:
            attn = layer.self_attn
            attn.sampling_offsets.bias.normal_(0, 2)
            attn.attention_weights.weight.normal_(0, 0.1)
            attn.attention_weights.bias.view(layout)[silent] = -1e4


def test_two_encoder_levels_match_three_that_never_look_at_stride_8(image):
    """`num_encoder_levels: 2` (stride 8 from the FPN): fewer_encoder_levels cuts a 3-level model's offsets,
    attention weights and level encodings to the coarse levels. A 3-level model whose attention weights for stride
    8 are exp(-1e4) = 0 computes its stride-32 / 16 memory from those levels only, so the cut model must give that
    memory too: the same sums with exact zeros left out (a reordered float reduction: the fixture's 1-thread re-run
    bound). Wrong slicing (levels and points swapped, another head's rows) moves it by O(1)."""
    torch.manual_seed(3)
    three = build_model(TINY).eval()
    heads, points = TINY.num_heads, TINY.encoder_num_points
    _spread_sampling(three, np.s_[:, 2])
    cfg2 = ModelConfig.from_dict({**TINY.to_dict(), "num_encoder_levels": 2})
    two = build_model(cfg2).eval()
    missing, unexpected = two.load_state_dict(fewer_encoder_levels(three.state_dict(), 3, 2, heads, points),
                                              strict=False)
    assert not unexpected and sorted(missing) == ["pixel_decoder.output_convs.0.conv.weight",
                                                  "pixel_decoder.output_convs.0.gn.bias",
                                                  "pixel_decoder.output_convs.0.gn.weight"]
    with torch.no_grad():
        feats = three.backbone(image)
        mf3, mem3 = three.pixel_decoder(feats)
        mf2, mem2 = two.pixel_decoder(feats)
    bound = tol.no_flip("query")
    for a, b in zip(mem3[:2], mem2[:2]):
        assert (a - b).abs().max() <= bound * a.abs().max()
    assert [m.shape for m in mem2] == [m.shape for m in mem3] and mf2.shape == mf3.shape
    # the stride-4 FPN step moved to index 1, the stride-8 map's input projection became its lateral
    pd3, pd2 = three.pixel_decoder, two.pixel_decoder
    assert torch.equal(pd2.lateral_convs[1].conv.weight, pd3.lateral_convs[0].conv.weight)
    assert torch.equal(pd2.output_convs[1].conv.weight, pd3.output_convs[0].conv.weight)
    assert torch.equal(pd2.lateral_convs[0].conv.weight, pd3.input_convs[2].conv.weight)
    with pytest.raises(ValueError, match="new < old"):
        fewer_encoder_levels(three.state_dict(), 2, 2, heads, points)
    with pytest.raises(ValueError, match=r"num_levels=3, num_outs=2"):
        MSDeformAttnPixelDecoder(TINY.backbone_channels, num_levels=3, num_outs=2)


def test_two_sampling_points_match_four_whose_far_points_weigh_nothing(image):
    """`encoder_num_points: 2`: fewer_encoder_points keeps each head's and level's first two points (offsets and
    attention weights). A 4-point model whose attention weights for points 2 and 3 are exp(-1e4) = 0 computes the
    same memory from its first two points, so the cut model must give it too: the same sums with exact zeros left
    out (the fixture's 1-thread re-run bound). Wrong slicing (points and levels swapped, another head's rows, the
    x / y pairs split) moves it by O(1)."""
    torch.manual_seed(4)
    four = build_model(ModelConfig.from_dict({**TINY.to_dict(), "encoder_num_points": 4})).eval()
    heads, levels = TINY.num_heads, TINY.num_encoder_levels
    _spread_sampling(four, np.s_[:, :, 2:])
    two = build_model(ModelConfig.from_dict({**TINY.to_dict(), "encoder_num_points": 2})).eval()
    missing, unexpected = two.load_state_dict(fewer_encoder_points(four.state_dict(), 4, 2, heads, levels))
    assert not missing and not unexpected
    with torch.no_grad():
        feats = four.backbone(image)
        mf4, mem4 = four.pixel_decoder(feats)
        mf2, mem2 = two.pixel_decoder(feats)
    bound = tol.no_flip("query")
    for a, b in zip((mf4, *mem4), (mf2, *mem2)):
        assert (a - b).abs().max() <= bound * a.abs().max()
    with pytest.raises(ValueError, match="new < old"):
        fewer_encoder_points(four.state_dict(), 2, 2, heads, levels)


def test_small_backbone_stays_channels_last_after_loading():
    """The EfficientNet body runs channels_last (faster oneDNN convolutions); loading with assign=True, as
    checkpoint.py does, must not silently fall back to NCHW weights (every call would then convert them)."""
    from omg_seg_core.model.omg_seg import build_model

    torch.manual_seed(0)
    src = build_model(TINY, pretrained_backbone=False)
    dst = build_model(TINY, pretrained_backbone=False)
    dst.load_state_dict({k: v.clone().contiguous() for k, v in src.state_dict().items()}, assign=True)
    w = dst.backbone.body.conv_stem.weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        feats = dst.backbone(x)
    assert all(f.is_contiguous() for f in feats)  # callers get plain NCHW features
