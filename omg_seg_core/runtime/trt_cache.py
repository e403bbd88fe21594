"""TensorRT engine cache: keys, files, corruption checks and the rebuild-once policy (no TensorRT import here,
so all of it runs and is tested on machines without TensorRT; `trt_backend.py` plugs TensorRT in).

Layout under the cache root (default `cache_dir()/trt`): `trt-<version>_sm<cc>/` per TensorRT version and GPU,
holding `<graph>-<onnx sha256[:16]>-<input shape>-<precision>[-b<max batch>].engine`, its JSON sidecar (full key, sha256 and
size of the engine bytes) and one `timing.cache`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import cache_dir

LOG = logging.getLogger(__name__)
PRECISIONS = ("fp16", "fp32")
Progress = Callable[[str], None]


class EngineBuildError(RuntimeError):
    """The ONNX graph could not be parsed or built into an engine (message carries the parser errors)."""


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file (the ONNX graph; its external weights file is hashed by the exporter's metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. Any change gives another file name, so stale engines are never loaded."""

    graph: str                          # "image" | "prompt"
    trt_version: str                    # tensorrt.__version__
    compute_capability: tuple[int, int]
    onnx_sha256: str
    input_shape: tuple[int, ...]        # static shape of the first input, e.g. (1, 3, 480, 640)
    precision: str                      # "fp16" | "fp32"
    max_batch: int = 1                  # largest batch of the optimisation profile (image graph, several cameras)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {self.max_batch!r}")
        if len(self.onnx_sha256) < 16:
            raise ValueError(f"onnx_sha256 looks truncated: {self.onnx_sha256!r}")

    @property
    def dir_name(self) -> str:
        major, minor = self.compute_capability
        return f"trt-{self.trt_version}_sm{major}{minor}"

    @property
    def stem(self) -> str:
        shape = "x".join(str(int(s)) for s in self.input_shape)
        batch = f"-b{self.max_batch}" if self.max_batch > 1 else ""
        return f"{self.graph}-{self.onnx_sha256[:16]}-{shape}-{self.precision}{batch}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["compute_capability"] = list(self.compute_capability)
        d["input_shape"] = list(self.input_shape)
        return d


class EngineCache:
    """Engine + sidecar + timing-cache files under one root. Writes are atomic (temp file + rename), so an
    interrupted build leaves no half-written engine behind and re-running is safe."""

    def __init__(self, root: Optional[Path] = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "trt"

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / key.dir_name / f"{key.stem}.engine"

    def meta_path(self, key: EngineKey) -> Path:
        return self.root / key.dir_name / f"{key.stem}.json"

    def timing_cache_path(self, key: EngineKey) -> Path:
        return self.root / key.dir_name / "timing.cache"

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def write(self, key: EngineKey, engine: bytes) -> Path:
        path = self.engine_path(key)
        self._atomic_write(path, engine)
        meta = {"key": key.to_json(), "sha256": hashlib.sha256(engine).hexdigest(), "size": len(engine),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._atomic_write(self.meta_path(key), json.dumps(meta, indent=1).encode())
        return path

    def read(self, key: EngineKey) -> Optional[bytes]:
        """Engine bytes, or None when absent. A corrupt entry (sidecar missing/unreadable, other key, size or hash
        mismatch) is deleted with a warning and reported as absent, so the caller rebuilds it."""
        path, meta_path = self.engine_path(key), self.meta_path(key)
        if not path.exists():
            return None
        reason = None
        try:
            meta = json.loads(meta_path.read_text())
            data = path.read_bytes()
            if meta.get("key") != key.to_json():
                reason = "its sidecar describes another key"
            elif meta.get("size") != len(data) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
                reason = f"size/sha256 mismatch ({len(data)} B on disk, {meta.get('size')} B recorded)"
        except (OSError, ValueError, AttributeError) as e:
            reason = f"sidecar {meta_path.name} unreadable ({type(e).__name__}: {e})"
        if reason is not None:
            LOG.warning("TensorRT engine cache %s is corrupt (%s): deleting it, it will be rebuilt", path, reason)
            self.invalidate(key)
            return None
        return data

    def invalidate(self, key: EngineKey) -> None:
        for p in (self.engine_path(key), self.meta_path(key)):
            p.unlink(missing_ok=True)

    def read_timing_cache(self, key: EngineKey) -> bytes:
        p = self.timing_cache_path(key)
        return p.read_bytes() if p.exists() else b""

    def write_timing_cache(self, key: EngineKey, data: bytes) -> None:
        if data:
            self._atomic_write(self.timing_cache_path(key), data)


def load_or_build(onnx_path: Path, key: EngineKey, cache: EngineCache, deserialize: Callable[[bytes], Any],
                  build: Callable[[], tuple[bytes, bytes]], progress: Progress = print) -> Any:
    """Return deserialize(engine bytes) from the cache, building (and caching) the engine when absent, corrupt
    or refused by `deserialize` (returns None / raises). Rebuilds at most once: a freshly built engine that
    still does not deserialise raises EngineBuildError (no crash loop). TensorRT-independent for testing."""
    data = cache.read(key)
    if data is not None:
        try:
            engine = deserialize(data)
        except Exception as e:  # noqa: BLE001 (TensorRT raises various types on foreign engines)
            LOG.warning("deserialising %s failed (%s)", cache.engine_path(key), e)
            engine = None
        if engine is not None:
            return engine
        progress(f"cached engine {cache.engine_path(key).name} does not load here (other TensorRT/GPU or "
                 f"corrupt): rebuilding")
        cache.invalidate(key)
    engine_bytes, timing = build()
    cache.write(key, engine_bytes)
    cache.write_timing_cache(key, timing)
    engine = deserialize(engine_bytes)
    if engine is None:
        cache.invalidate(key)
        raise EngineBuildError(f"engine freshly built from {onnx_path} does not deserialise; not retrying")
    return engine


__all__ = ["EngineKey", "EngineCache", "EngineBuildError", "load_or_build", "file_sha256", "PRECISIONS"]
