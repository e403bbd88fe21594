"""Shared fixtures for the runtime tests: one small model and ONE export of it, reused by every test module.

The small model is the shipped checkpoint when models/omg_seg_tiny.pth exists, else build_model(TINY) with a fixed
seed (parity does not need trained weights). The export is at 128x160 (static size, multiple of 32) to keep the
whole runtime suite well under two minutes on one CPU thread.
"""
from __future__ import annotations

import pytest
import torch

SIZE = (128, 160)
MAX_PROMPTS = 4


def _tiny_model() -> torch.nn.Module:
    from omg_seg_core.config import TINY, default_checkpoint_path
    from omg_seg_core.model.omg_seg import build_model

    if default_checkpoint_path(TINY.name) is not None:
        from omg_seg_core.model.checkpoint import load_model

        return load_model(TINY.name)[0].float().eval()
    torch.manual_seed(0)
    return build_model(TINY)


@pytest.fixture(scope="session")
def tiny_model() -> torch.nn.Module:
    return _tiny_model()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory):
    """Export of the small model at SIZE with fp16 graphs, no onnxslim (slim is covered once, separately)."""
    from omg_seg_core.runtime.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("tiny_export")
    return export_onnx(tiny_model, out, SIZE, max_prompts=MAX_PROMPTS, fp16=True, slim=False,
                       progress=lambda s: None)


@pytest.fixture()
def copy_bundle(tiny_bundle, tmp_path):
    """A private copy of the shared export that a test may damage."""
    import shutil

    from omg_seg_core.runtime.onnx_io import OnnxBundle

    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.root, dst)
    return OnnxBundle.load(dst)


def trt_skip_reason() -> str | None:
    """None when TensorRT tests can run here, else why not (used in skip marks)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"tensorrt not importable ({type(e).__name__})"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


@pytest.fixture()
def needs_trt() -> None:
    reason = trt_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def image() -> torch.Tensor:
    """A normalised, padded image at the export size: a drawn scene (two coloured boxes on grey, 120x160 padded to
    128x160) so a trained model finds objects in it too; a random image would give empty panoptic results."""
    import numpy as np

    from omg_seg_core.predict.preprocess import preprocess

    rgb = np.full((120, 160, 3), 90, np.uint8)
    rgb[20:60, 20:80] = (220, 30, 30)
    rgb[60:115, 80:150] = (30, 30, 220)
    x, meta = preprocess(rgb, 160, 32)
    assert tuple(x.shape[-2:]) == SIZE
    return x


