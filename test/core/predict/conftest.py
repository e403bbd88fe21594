"""Fixtures of the predictor tests."""
import pytest


@pytest.fixture(scope="module")
def shipped_predictor():
    """The shipped omg_seg_tiny with the generator's vocabulary (one per test module: modules change its state)."""
    from omg_seg_core.config import default_checkpoint_path
    from omg_seg_core.data.synth import world
    from omg_seg_core.predict import build_predictor

    if default_checkpoint_path() is None:
        pytest.skip("needs the shipped omg_seg_tiny checkpoint")
    return build_predictor(str(default_checkpoint_path()), vocabulary=world.vocabulary_path())
