"""TensorRT backend: engine cache keys, corrupt-cache handling and the rebuild-once policy (TensorRT-independent,
run everywhere), then real engine builds that run only where `tensorrt` imports and a CUDA GPU exists."""
from __future__ import annotations

import json

import pytest
import torch

from omg_seg_core.runtime.trt_backend import TrtUnavailableError, import_tensorrt, trt_major
from omg_seg_core.runtime.trt_cache import EngineBuildError, EngineCache, EngineKey, file_sha256, load_or_build


def _key(**kw) -> EngineKey:
    base = dict(graph="image", trt_version="10.3.0.30", compute_capability=(8, 7), onnx_sha256="ab" * 32,
                input_shape=(1, 3, 256, 320), precision="fp16")
    base.update(kw)
    return EngineKey(**base)


def test_key_names_every_dependency():
    k = _key()
    assert k.dir_name == "trt-10.3.0.30_sm87"
    assert k.stem == f"image-{'ab' * 8}-1x3x256x320-fp16"
    others = [_key(trt_version="11.0.0"), _key(compute_capability=(9, 0)), _key(onnx_sha256="cd" * 32),
              _key(input_shape=(1, 3, 480, 640)), _key(precision="fp32"), _key(graph="prompt")]
    cache = EngineCache(root=None)
    paths = {cache.engine_path(o) for o in others} | {cache.engine_path(k)}
    assert len(paths) == 7  # any change of version, GPU, ONNX, shape, precision or graph -> another file
    with pytest.raises(ValueError, match="precision"):
        _key(precision="int8")
    assert trt_major("10.3.0.30") == 10 and trt_major("11.0.1") == 11
    with pytest.raises(ValueError):
        trt_major("ten")


def test_cache_roundtrip_and_corrupt_files_are_dropped(tmp_path):
    cache, key = EngineCache(tmp_path), _key()
    assert cache.read(key) is None
    path = cache.write(key, b"engine-bytes" * 100)
    assert cache.read(key) == b"engine-bytes" * 100
    assert json.loads(cache.meta_path(key).read_text())["key"]["onnx_sha256"] == key.onnx_sha256
    # truncated engine (e.g. power loss while copying): detected by size/hash, deleted, reported absent
    path.write_bytes(b"engine-bytes" * 10)
    assert cache.read(key) is None and not path.exists() and not cache.meta_path(key).exists()
    # engine without its sidecar, and a sidecar describing another key
    cache.write(key, b"x" * 10)
    cache.meta_path(key).unlink()
    assert cache.read(key) is None and not path.exists()
    cache.write(key, b"x" * 10)
    meta = json.loads(cache.meta_path(key).read_text())
    meta["key"]["precision"] = "fp32"
    cache.meta_path(key).write_text(json.dumps(meta))
    assert cache.read(key) is None
    cache.write(key, b"x" * 10)
    cache.meta_path(key).write_text("{not json")
    assert cache.read(key) is None
    cache.write_timing_cache(key, b"timing")
    assert cache.read_timing_cache(key) == b"timing"
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files


class _Recorder:
    """Counts builds; 'deserialises' only bytes this recorder built (like an engine from this TensorRT)."""

    def __init__(self, good: bool = True) -> None:
        self.builds, self.good = 0, good

    def build(self) -> tuple[bytes, bytes]:
        self.builds += 1
        return (b"ENGINE-ok" if self.good else b"ENGINE-bad"), b"timing"

    @staticmethod
    def deserialize(data: bytes):
        return ("engine", data) if data == b"ENGINE-ok" else None


def test_load_or_build_reuses_rebuilds_once_and_never_loops(tmp_path):
    cache, key, onnx = EngineCache(tmp_path), _key(), tmp_path / "g.onnx"
    r = _Recorder()
    assert load_or_build(onnx, key, cache, r.deserialize, r.build, progress=lambda s: None) == ("engine", b"ENGINE-ok")
    assert r.builds == 1 and cache.read_timing_cache(key) == b"timing"
    load_or_build(onnx, key, cache, r.deserialize, r.build, progress=lambda s: None)
    assert r.builds == 1  # cache hit
    # an engine from another TensorRT version / GPU with a valid sidecar: deserialisation refuses -> rebuild
    cache.write(key, b"ENGINE-from-trt-10.0")
    msgs: list[str] = []
    load_or_build(onnx, key, cache, r.deserialize, r.build, progress=msgs.append)
    assert r.builds == 2 and any("rebuilding" in m for m in msgs)
    # deserialisation raising (TensorRT throws on some foreign engines) is handled the same way
    cache.write(key, b"garbage")

    def raising(data: bytes):
        if data != b"ENGINE-ok":
            raise RuntimeError("Serialization assertion failed")
        return "engine"

    assert load_or_build(onnx, key, cache, raising, r.build, progress=lambda s: None) == "engine"
    assert r.builds == 3
    # a freshly built engine that still does not load: one build, then a clear error (no crash loop)
    bad = _Recorder(good=False)
    cache.invalidate(key)
    with pytest.raises(EngineBuildError, match="not retrying"):
        load_or_build(onnx, key, cache, bad.deserialize, bad.build, progress=lambda s: None)
    assert bad.builds == 1 and cache.read(key) is None


def test_file_hash_is_content_based(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1" * 5_000_000)
    b.write_bytes(b"1" * 5_000_000)
    assert file_sha256(a) == file_sha256(b)
    b.write_bytes(b"1" * 4_999_999 + b"2")
    assert file_sha256(a) != file_sha256(b)


def test_without_tensorrt_the_backend_says_why(tiny_bundle):
    try:
        import tensorrt  # noqa: F401
    except Exception:  # noqa: BLE001
        with pytest.raises(TrtUnavailableError, match="tensorrt not importable"):
            import_tensorrt()
        from omg_seg_core.runtime.trt_backend import TrtBackend

        with pytest.raises(TrtUnavailableError):
            TrtBackend(tiny_bundle)
        return
    pytest.skip("tensorrt is importable here: covered by the GPU tests below")


# ---- real TensorRT (GPU machines with TensorRT only) ------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_engine_matches_onnxruntime(needs_trt, tiny_bundle, image, tmp_path, precision):
    from omg_seg_core.runtime.ort_backend import OrtBackend
    from omg_seg_core.runtime.trt_backend import TrtBackend

    msgs: list[str] = []
    trt_b = TrtBackend(tiny_bundle, precision=precision, cache=EngineCache(tmp_path), progress=msgs.append)
    assert any("built" in m for m in msgs)
    ort_b = OrtBackend(tiny_bundle, threads=1)
    a, b = ort_b.run_image(image), trt_b.run_image(image.cuda())
    tol = 1e-3 if precision == "fp32" else 5e-2
    scale = a.mask_logits.abs().max().item()
    assert (a.mask_logits - b.mask_logits.cpu()).abs().max().item() < tol * scale
    boxes = torch.tensor([[4.0, 6, 60, 70], [30, 20, 150, 110]])
    pa, pb = ort_b.run_prompt(a, boxes, (120, 160)), trt_b.run_prompt(b, boxes, (120, 160))
    assert (pa.mask_logits - pb.mask_logits.cpu()).abs().max().item() < tol * max(1.0, scale)
    # second construction: engines come from the cache, no build
    msgs.clear()
    TrtBackend(tiny_bundle, precision=precision, cache=EngineCache(tmp_path), progress=msgs.append)
    assert not any(m.startswith("built") for m in msgs)


def test_trt_corrupt_engine_is_rebuilt(needs_trt, tiny_bundle, tmp_path):
    from omg_seg_core.runtime.trt_backend import TrtBackend

    cache = EngineCache(tmp_path)
    TrtBackend(tiny_bundle, precision="fp32", cache=cache, build_only=True, progress=lambda s: None)
    for engine in tmp_path.rglob("*.engine"):
        data = engine.read_bytes()
        engine.write_bytes(data[: len(data) // 2])
    msgs: list[str] = []
    TrtBackend(tiny_bundle, precision="fp32", cache=cache, build_only=True, progress=msgs.append)
    assert sum(m.startswith("built") for m in msgs) == 2  # both graphs rebuilt once
