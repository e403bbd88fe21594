"""Backend selection and the TensorRT -> ONNX Runtime -> PyTorch fallback with its warning (real backends)."""
from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from omg_seg_core.runtime.select import BackendUnavailableError, canonical_name, make_backend

QUIET = dict(threads=1, progress=lambda s: None)


def _trt_usable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return torch.cuda.is_available()


def test_names_and_aliases():
    assert [canonical_name(n) for n in ("trt", "ORT", "onnx", "pytorch", "torch")] == [
        "tensorrt", "onnxruntime", "onnxruntime", "torch", "torch"]
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        canonical_name("openvino")


def test_onnxruntime_backend_from_a_bundle(tiny_model, tiny_bundle, image):
    b = make_backend("onnxruntime", tiny_model, onnx_dir=tiny_bundle.root, **QUIET)
    assert b.name == "onnxruntime" and b.input_size == (128, 160) and b.device == "cpu"
    assert b.run_image(image).mask_logits.shape[-2:] == (32, 40)


def test_spinning_reaches_the_onnxruntime_sessions(tiny_model, tiny_bundle):
    """Worker threads sleep when idle unless spinning=True is asked for, and then stop spinning when a run returns
    (docs/runtimes.md)."""
    def entry(b, key: str = "session.intra_op.allow_spinning") -> str:
        try:
            return b._sessions["image"].get_session_options().get_session_config_entry(key)
        except RuntimeError:  # onnxruntime: "does not have configuration with key"
            return ""

    sleeping = make_backend("onnxruntime", tiny_model, onnx_dir=tiny_bundle.root, **QUIET)
    assert entry(sleeping) == "0" and entry(sleeping, "session.force_spinning_stop") == ""
    spinning = make_backend("onnxruntime", tiny_model, onnx_dir=tiny_bundle.root, spinning=True, **QUIET)
    assert entry(spinning) == "1" and entry(spinning, "session.force_spinning_stop") == "1"


@pytest.mark.skipif(_trt_usable(), reason="TensorRT and a GPU are present: no fallback happens here")
def test_tensorrt_falls_back_to_onnxruntime_with_a_warning(tiny_model, tiny_bundle):
    with pytest.warns(RuntimeWarning, match=r"backend 'tensorrt' cannot load \(TrtUnavailableError: .*"
                                            r"falling back to 'onnxruntime'"):
        b = make_backend("tensorrt", tiny_model, device="cuda:0", onnx_dir=tiny_bundle.root, **QUIET)
    assert b.name == "onnxruntime"
    with pytest.raises(BackendUnavailableError, match="tensorrt: TrtUnavailableError"):
        make_backend("tensorrt", tiny_model, onnx_dir=tiny_bundle.root, fallback=False, **QUIET)


def test_broken_export_falls_back_to_torch_and_chain_ends_there(tiny_model, tiny_bundle, tmp_path, image):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle.root, broken)
    (broken / "image.onnx").write_bytes(b"\x08\x01not-a-model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = make_backend("tensorrt", tiny_model, onnx_dir=broken, **QUIET)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert b.name == "torch"
    assert any("'onnxruntime' cannot load (OnnxCorruptError" in m and "falling back to 'torch'" in m for m in msgs)
    if not _trt_usable():
        assert any("'tensorrt' cannot load" in m for m in msgs)
    with torch.no_grad():
        assert b.run_image(image).mask_logits.shape[-2:] == (32, 40)  # torch runs any size
    with pytest.raises(BackendUnavailableError, match="onnxruntime: OnnxCorruptError"):
        make_backend("onnxruntime", tiny_model, onnx_dir=broken, fallback=False, **QUIET)


def test_bundle_for_another_model_is_not_used(tiny_model, tiny_bundle):
    import dataclasses

    from omg_seg_core.config import TINY
    from omg_seg_core.model.omg_seg import build_model

    other = build_model(dataclasses.replace(TINY, num_queries=TINY.num_queries + 2))
    with pytest.warns(RuntimeWarning, match="OnnxMismatchError.*falling back to 'torch'"):
        b = make_backend("onnxruntime", other, onnx_dir=tiny_bundle.root, **QUIET)
    assert b.name == "torch"


def test_configuration_errors_do_not_fall_back(tiny_model):
    with pytest.raises(ValueError, match="multiple of 32"):
        make_backend("onnxruntime", tiny_model, input_size=(100, 160), **QUIET)
    with pytest.raises(ValueError, match="needs a model"):
        make_backend("onnxruntime", None, **QUIET)


def test_predictor_factory_delegates_here(tiny_model, tiny_bundle):
    """build_predictor's backend names (aliases included) go through this one make_backend."""
    from omg_seg_core.predict import build_predictor

    p = build_predictor(tiny_model, backend="ort", onnx_dir=tiny_bundle.root, threads=1,
                        vocabulary={"things": ["a"], "stuff": []}, text_encoder=_no_text(tiny_model))
    assert p.backend.name == "onnxruntime"


def _no_text(model):
    """A tiny random text tower of the model's width (nothing downloaded)."""
    from omg_seg_core.text.clip_text import ClipTextEncoder

    return ClipTextEncoder(text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
                           embed_dim=model.cfg.class_embed_dim)


def test_per_size_backend_exports_each_padded_size_once(tiny_model, tmp_path, image):
    msgs: list[str] = []
    b = make_backend("ort", tiny_model, long_side=160, cache_root=tmp_path, threads=1, progress=msgs.append)
    assert b.name == "onnxruntime" and b.input_size is None
    assert sum(m.startswith("exporting image graph") for m in msgs) == 1  # eager first size: 4:3 at 160 = 128x160
    f = b.run_image(image)  # 128x160: the first size, no new export
    assert sum(m.startswith("exporting image graph") for m in msgs) == 1
    small = image[..., :96, :]
    g = b.run_image(small)  # a new padded size: its own exact-size export
    assert sum(m.startswith("exporting image graph") for m in msgs) == 2
    with torch.no_grad():
        ref = tiny_model.forward_image(small)
    assert (g.mask_logits - ref.mask_logits).abs().max().item() < 1e-3  # exact size: equals PyTorch
    boxes = torch.tensor([[4.0, 6, 60, 70]])
    assert b.run_prompt(g, boxes, (90, 160)).mask_logits.shape[-2:] == (24, 40)
    assert b.run_prompt(f, boxes, (120, 160)).mask_logits.shape[-2:] == (32, 40)
    assert len(list((tmp_path / "onnx").iterdir())) == 2  # cached on disk for the next start
    b.release()


def test_auto_picks_what_this_machine_has(tiny_model, tiny_bundle):
    b = make_backend("auto", tiny_model, onnx_dir=tiny_bundle.root, **QUIET)
    assert b.name == ("tensorrt" if _trt_usable() else "onnxruntime")
