"""An installed package (not the source checkout) finds its shipped data in share/omg_seg_ros.

`pip install --prefix P` lays files out like colcon: code in P/lib/pythonX.Y/site-packages, setup.py data_files in
P/share/omg_seg_ros. The default model, vocabularies, parameter file, Fast DDS profile and demo samples must all
resolve there when the code runs from that prefix, far from the repository."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
from omg_seg_core.config import DATA_ROOT, PACKAGE_ROOT, default_checkpoint_path, default_vocabulary_path
from omg_seg_core.text.vocabulary import load_vocabulary
from omg_seg_ros.loader import resolve_path
from omg_seg_ros.cli.demo import SAMPLES
print(json.dumps(dict(data_root=str(DATA_ROOT), package_root=str(PACKAGE_ROOT),
    checkpoint=str(default_checkpoint_path()), vocabulary=str(default_vocabulary_path()),
    n_robot_classes=len(load_vocabulary("robot_workspace").names),
    params=str(resolve_path("config/perception.yaml")), samples=str(SAMPLES),
    n_frames=len(list(SAMPLES.glob("frame_*.jpg"))))))
"""


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("install")
    # setuptools builds in the source folder (build/, *.egg-info): build from a copy so the checkout stays clean
    src = tmp_path_factory.mktemp("src") / "omg_seg_ros"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "install", "log", "demo_output", "runs", "data_cache", "cache", "bench_results",
        "__pycache__", "*.egg-info", ".pytest_cache"))
    # --ignore-installed: without it pip first uninstalls the venv's editable omg_seg_ros
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "--quiet", "--ignore-installed", "--prefix", str(p), str(src)], capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        pytest.fail(f"pip install --prefix failed:\n{r.stdout}\n{r.stderr}")
    return p


def test_installed_package_uses_its_share_folder(prefix, tmp_path):
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    share = prefix / "share" / "omg_seg_ros"
    assert (share / "config" / "perception_fastdds.xml").exists()
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got["package_root"]) == site
    assert Path(got["data_root"]) == share
    assert Path(got["checkpoint"]) == share / "models" / "omg_seg_tiny.pth"
    assert Path(got["vocabulary"]).exists() and Path(got["params"]) == share / "config" / "perception.yaml"
    assert got["n_robot_classes"] > 0
    assert Path(got["samples"]) == share / "data" / "samples" / "robot_scene" and got["n_frames"] == 40
