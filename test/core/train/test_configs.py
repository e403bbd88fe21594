"""Every shipped training config loads into TrainConfig (unknown keys or wrong types would fail here)."""
from pathlib import Path

import pytest

from omg_seg_core.train.config import load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "config").glob("train_*.yaml"))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"train_tiny.yaml", "train_tiny_ft320.yaml", "train_convl_head.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_training_config_loads(path):
    cfg = load_train_config(path)
    assert cfg.optim.iters > 0 and cfg.optim.batch_size > 0
    w, h = cfg.data.image_size
    assert w >= 32 and h >= 32  # batches are padded to multiples of 32 (train/data.py)
