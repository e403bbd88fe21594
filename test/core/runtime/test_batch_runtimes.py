"""Several images in ONE image-graph call on every runtime: the export's dynamic batch, ONNX Runtime batch vs single
and vs PyTorch, the predictor's batched call on ONNX Runtime, TensorRT's optimisation profile (real engines on GPU
machines with TensorRT only; the profile and shape logic, the cache key and the plumbing everywhere).

Bounds: test/tolerances.py, "Batch-equals-single"."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tolerances as tol
from omg_seg_core.runtime.onnx_io import IMAGE_BATCH_AXIS, IMAGE_INPUT
from omg_seg_core.runtime.ort_backend import OrtBackend

FIELDS = (("mask_logits", "mask_window"), ("iou_logits", "iou"), ("query_feat", "query"))


def _images(n: int) -> torch.Tensor:
    """n different normalised 120x160 scenes padded to the export size 128x160 -> [n, 3, 128, 160]."""
    from omg_seg_core.predict.preprocess import preprocess

    out = []
    for i in range(n):
        rgb = np.full((120, 160, 3), 60 + 30 * i, np.uint8)
        rgb[10 + 5 * i:60, 20:90 - 7 * i] = (220, 30 + 40 * i, 30)
        rgb[60:115, 70 + 6 * i:150] = (30, 30, 220 - 30 * i)
        out.append(preprocess(rgb, 160, 32)[0])
    return torch.cat(out)


def _compare(parts, singles, label: str) -> None:
    """Per-image features (lists of batch-1 ImageFeatures) within the batch-equals-single bounds."""
    assert len(parts) == len(singles)
    for i, (a, b) in enumerate(zip(parts, singles)):
        for name, key in FIELDS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.shape == y.shape, (label, name)
            tol.check(f"batch_{label}_{name}", (x.float().cpu() - y.float().cpu()).abs().max().item(),
                      tol.free(key), f"{label}, image {i}")


def test_export_declares_a_dynamic_batch(tiny_bundle):
    import onnx

    assert tiny_bundle.meta["image_batch"] == "dynamic"
    image = onnx.load(str(tiny_bundle.path("image")), load_external_data=False)
    dims = {v.name: v.type.tensor_type.shape.dim[0] for v in list(image.graph.input) + list(image.graph.output)}
    assert dims[IMAGE_INPUT].dim_param == IMAGE_BATCH_AXIS
    assert all(d.dim_param == IMAGE_BATCH_AXIS for d in dims.values()), "every image output is batched"
    prompt = onnx.load(str(tiny_bundle.path("prompt")), load_external_data=False)
    assert all(v.type.tensor_type.shape.dim[0].dim_value == 1 for v in prompt.graph.input), "prompts stay batch 1"


def test_onnxruntime_batch_equals_single_and_torch(tiny_model, tiny_bundle):
    ort = OrtBackend(tiny_bundle, threads=1)
    x = _images(3)
    batched = ort.run_image(x)
    assert batched.mask_logits.shape[0] == 3 and batched.memory[0].shape[0] == 3
    _compare(batched.unbatch(), [ort.run_image(x[i:i + 1]) for i in range(3)], "ort")
    with torch.inference_mode():
        ref = tiny_model.forward_image(x)
    _compare(batched.unbatch(), ref.unbatch(), "ort_vs_torch")
    # a smaller image in the batch is padded to the static size inside, and cropped back
    small = x[:2, :, :96]
    got = ort.run_image(small)
    assert got.mask_logits.shape[-2:] == (24, 40) and got.mask_logits.shape[0] == 2


def test_fp16_graph_takes_a_batch_too(tiny_bundle):
    ort = OrtBackend(tiny_bundle, threads=1, fp16=True)
    x = _images(2)
    assert ort.run_image(x).mask_logits.shape[0] == 2


def test_predictor_batch_on_onnxruntime_equals_set_image(tiny_model, tiny_bundle, tmp_path, monkeypatch):
    from omg_seg_core.predict import build_predictor
    from omg_seg_core.predict.batch import set_images
    from omg_seg_core.predict.view import PredictorView
    from omg_seg_core.text.clip_text import ClipTextEncoder

    monkeypatch.setenv("OMG_SEG_CACHE", str(tmp_path))
    torch.manual_seed(0)
    enc = ClipTextEncoder(text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
                          embed_dim=tiny_model.cfg.class_embed_dim)
    p = build_predictor(tiny_model, backend="onnxruntime", onnx_dir=tiny_bundle.root, threads=1, text_encoder=enc,
                        vocabulary="robot_workspace", long_side=160)
    rgbs = []
    for i in range(3):
        rgb = np.full((120, 160, 3), 70 + 20 * i, np.uint8)
        rgb[15:70, 10 + 10 * i:100] = (200, 40, 40 + 50 * i)
        rgb[70:110, 90:150] = (40, 40, 200)
        rgbs.append(rgb)
    views = [PredictorView(p) for _ in rgbs]
    set_images(views, rgbs)
    single = PredictorView(p)
    for i, (v, rgb) in enumerate(zip(views, rgbs)):
        single.set_image(rgb)
        _compare([v.features], [single.features], f"ort_predictor_{i}")
        a, b = v.panoptic(), single.panoptic()
        assert len(a) == len(b)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        tol.check("batch_ort_mask_pixels", int((a.masks != b.masks).sum()), tol.pixels("inst_px", tol.RERUN_FREE))


# ---- TensorRT: the profile logic everywhere, real engines on GPU machines ----------------------------------------
def test_trt_batch_profile_and_input_checks():
    from omg_seg_core.runtime.trt_backend import EngineBuildError, batch_profile, check_input_shape

    shapes = batch_profile([("image", (-1, 3, 256, 320)), ("boxes", (1, 16, 4))], max_batch=4)
    assert shapes == {"image": ((1, 3, 256, 320), (4, 3, 256, 320), (4, 3, 256, 320))}
    assert batch_profile([("image", (1, 3, 256, 320))], max_batch=4) == {}
    with pytest.raises(EngineBuildError, match="other than the batch"):
        batch_profile([("image", (-1, 3, -1, 320))], max_batch=2)
    with pytest.raises(ValueError, match="max_batch"):
        batch_profile([], max_batch=0)
    check_input_shape("image", (3, 3, 256, 320), (-1, 3, 256, 320), (1, 4))
    with pytest.raises(ValueError, match="batch 5 outside the engine's profile 1..4"):
        check_input_shape("image", (5, 3, 256, 320), (-1, 3, 256, 320), (1, 4))
    with pytest.raises(ValueError, match="engine expects"):
        check_input_shape("image", (1, 3, 128, 320), (-1, 3, 256, 320), (1, 4))
    with pytest.raises(ValueError, match="engine expects"):
        check_input_shape("boxes", (1, 8, 4), (1, 16, 4))


def test_trt_engine_key_names_its_batch():
    from omg_seg_core.runtime.trt_cache import EngineKey

    base = dict(graph="image", trt_version="10.3.0.30", compute_capability=(8, 7), onnx_sha256="ab" * 32,
                input_shape=(1, 3, 256, 320), precision="fp16")
    assert EngineKey(**base).stem.endswith("-fp16")  # batch 1: the name it always had
    assert EngineKey(**base, max_batch=4).stem.endswith("-fp16-b4")
    with pytest.raises(ValueError, match="max_batch"):
        EngineKey(**base, max_batch=0)


def test_make_backend_passes_the_batch_to_tensorrt(tiny_model, tiny_bundle, monkeypatch):
    import omg_seg_core.runtime.trt_backend as trt_backend
    from omg_seg_core.runtime.select import make_backend

    seen = {}

    class Recorder:  # stands in for TrtBackend: what the selector asks TensorRT for
        name, device = "tensorrt", "cuda:0"

        def __init__(self, bundle, **kw):
            seen.update(kw, bundle=bundle)

    monkeypatch.setattr(trt_backend, "TrtBackend", Recorder)
    b = make_backend("tensorrt", tiny_model, onnx_dir=tiny_bundle.root, max_batch=3, fallback=False)
    assert isinstance(b, Recorder) and seen["max_batch"] == 3


def test_trt_backend_refuses_a_bad_max_batch_before_loading(tiny_bundle):
    from omg_seg_core.runtime.trt_backend import TrtBackend

    with pytest.raises(ValueError, match="max_batch"):
        TrtBackend(tiny_bundle, max_batch=0)


def test_trt_batch_equals_single_and_onnxruntime(needs_trt, tiny_bundle, tmp_path):
    from omg_seg_core.runtime.trt_backend import EngineCache, TrtBackend

    trt_b = TrtBackend(tiny_bundle, precision="fp32", cache=EngineCache(tmp_path), max_batch=3,
                       progress=lambda s: None)
    x = _images(3).cuda()
    batched = trt_b.run_image(x)
    _compare(batched.unbatch(), [trt_b.run_image(x[i:i + 1]) for i in range(3)], "trt")
    ref = OrtBackend(tiny_bundle, threads=1).run_image(x.cpu())
    scale = ref.mask_logits.abs().max().item()  # fp32 engine vs ONNX Runtime: test_trt.py's bound
    assert (ref.mask_logits - batched.mask_logits.cpu()).abs().max().item() < 1e-3 * scale
    with pytest.raises(ValueError, match="outside the engine's profile"):
        trt_b.run_image(_images(4).cuda())


def test_per_size_backend_is_safe_to_share_between_threads():
    """The node encodes the next frames (image graph) while the post thread runs prompts: two threads look sizes
    up at once. Each size is made once and lookups never fail."""
    import threading
    import time as _time

    from omg_seg_core.runtime.select import PerSizeBackend

    made: list = []

    class Fake:
        device = "cpu"

        def __init__(self, size):
            _time.sleep(0.01)  # making a size takes a while (an export): a race would make it twice
            made.append(size)

        def release(self):
            pass

    backend = PerSizeBackend("fake", Fake, (256, 320), max_sizes=2)
    errors: list = []

    def hammer(size):
        try:
            for _ in range(200):
                backend._get(size)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in [(256, 320), (320, 320)] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(made) == [(256, 320), (320, 320)]


def test_per_size_backend_makes_a_new_size_without_blocking_the_others():
    """A new camera size's backend (a TensorRT build takes minutes) is made outside the lookup lock: the sizes
    already made keep serving meanwhile."""
    import threading
    import time as _time

    from omg_seg_core.runtime.select import PerSizeBackend

    gate, started = threading.Event(), threading.Event()

    class Fake:
        device = "cpu"

        def __init__(self, size):
            if size == (512, 512):
                started.set()
                gate.wait(10.0)

        def release(self):
            pass

    backend = PerSizeBackend("fake", Fake, (256, 320), max_sizes=3)
    t = threading.Thread(target=backend._get, args=((512, 512),))
    t.start()
    try:
        assert started.wait(5.0)
        t0 = _time.monotonic()
        backend._get((256, 320))
        assert _time.monotonic() - t0 < 2.0, "a lookup of a made size waited for another size's build"
    finally:
        gate.set()
        t.join(10.0)
    assert (512, 512) in backend._by_size
