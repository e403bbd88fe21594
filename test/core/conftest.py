"""Fixtures shared by the core tests that run the shipped model."""
import pytest
import torch


@pytest.fixture(scope="module")
def shipped_predictor():
    """The shipped omg-seg-tiny (PyTorch) with the generated scenes' vocabulary, one per test module (modules change
    its state)."""
    from omg_seg_core.config import default_checkpoint_path
    from omg_seg_core.data.synth import world
    from omg_seg_core.predict import build_predictor

    if default_checkpoint_path() is None:
        pytest.skip("needs the shipped omg_seg_tiny checkpoint")
    torch.manual_seed(0)
    return build_predictor(str(default_checkpoint_path()), vocabulary=world.vocabulary_path())
