"""Root pytest configuration: make the source tree importable without an install and expose the golden fixture."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))  # shared test helpers: tolerances.py


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official-code golden fixture (../shared/reference/omg_seg_convl); tests skip if it is absent."""
    d = Path(os.environ.get("OMG_SEG_REFERENCE", ROOT.parent / "shared" / "reference" / "omg_seg_convl"))
    if not (d / "omg_seg_golden_head.pt").exists():
        pytest.skip(f"golden fixture not found in {d} (set OMG_SEG_REFERENCE)")
    return d


def pytest_sessionfinish(session, exitstatus):
    """Measured differences vs bounds (test/tolerances.py) to $OMG_SEG_DIFF_REPORT, for make test-portability."""
    import tolerances

    tolerances.write_report()
