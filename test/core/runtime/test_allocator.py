"""glibc malloc tuning (runtime/allocator.py): applied once on Linux/glibc, switchable off, in a fresh process."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CODE = ("import json, logging; logging.basicConfig(level=logging.INFO);"
        "from omg_seg_core.runtime.allocator import tune_allocator;"
        "a = tune_allocator(); b = tune_allocator(); print(json.dumps([a, a is b]))")


def _run(env_extra: dict) -> tuple[list, str]:
    import json

    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc")
def test_thresholds_are_applied_once_and_logged():
    (applied, same), log = _run({"OMG_SEG_MALLOC_TUNING": "1"})
    assert applied == {"mmap_threshold": 32 << 20, "trim_threshold": 1 << 30} and same
    assert "mmap threshold 32 MiB" in log


def test_environment_switch_disables_it():
    (applied, _), log = _run({"OMG_SEG_MALLOC_TUNING": "0"})
    assert applied is None and "disabled by OMG_SEG_MALLOC_TUNING" in log
