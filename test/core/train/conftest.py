"""Shared fixture of the training tests: a tiny generated COCO-panoptic dataset (4 images + one 3-frame video)."""
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from omg_seg_core.data.synth.generate import write_dataset

    root = tmp_path_factory.mktemp("synth")
    write_dataset(root / "img", "train", 0, (96, 64), frames=4, image_format="png", progress=False)
    write_dataset(root / "vid", "train", 0, (96, 64), sequences=1, length=3, image_format="png", progress=False)
    return root
