"""TorchBackend: the Backend protocol on a real (random-weight) TINY model, dtype handling, release."""
import pytest
import torch

from omg_seg_core.config import TINY
from omg_seg_core.runtime.backend import Backend
from omg_seg_core.runtime.torch_backend import TorchBackend, resolve_device, resolve_dtype


@pytest.fixture(scope="module")
def model():
    from omg_seg_core.model.omg_seg import build_model

    torch.manual_seed(0)
    return build_model(TINY, pretrained_backbone=False)


def test_backend_runs_both_graphs(model):
    b = TorchBackend(model, "cpu", "float32")
    assert isinstance(b, Backend) and b.name == "torch" and b.device == "cpu"
    feats = b.run_image(torch.zeros(1, 3, 96, 128))
    q = TINY.num_queries
    assert feats.mask_logits.shape == (1, q, 24, 32) and feats.class_embed.shape == (1, q, TINY.class_embed_dim)
    assert not feats.mask_logits.requires_grad and feats.clip_feat is None
    out = b.run_prompt(feats, torch.tensor([[10.0, 10.0, 50.0, 60.0], [3.0, 4.0, 9.0, 10.0]]), (90, 128))
    assert out.mask_logits.shape == (1, 2, 24, 32) and out.iou_logits.shape == (1, 2, 1)
    assert b.region_embed(feats, feats.mask_logits[0]) is None  # no CLIP head on the tiny model


def test_half_precision_and_release(model):
    b = TorchBackend(model, "cpu", "bfloat16")
    feats = b.run_image(torch.zeros(1, 3, 64, 64))  # float32 input is cast by the backend
    assert feats.mask_logits.dtype == torch.bfloat16
    b.release()
    with pytest.raises(RuntimeError, match="released"):
        b.run_image(torch.zeros(1, 3, 64, 64))
    model.float()


def test_bad_device_and_dtype():
    assert resolve_dtype("fp16") is torch.float16 and resolve_dtype(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="int8"):
        resolve_dtype("int8")
    with pytest.raises(ValueError, match="potato"):
        resolve_device("potato")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda:0"):
            resolve_device("cuda:0")
