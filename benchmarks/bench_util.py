"""Helpers shared by the benchmark scripts (not a benchmark itself): percentiles of possibly empty samples, table
cells that show a missing value as n/a, and the JSON every script writes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np


def percentile(v: list[float], q: float) -> Optional[float]:
    """The q-th percentile of `v` (numpy's linear rule), None when `v` is empty."""
    return float(np.percentile(v, q)) if v else None


def cell(v: Optional[float], spec: str = ".1f") -> str:
    """`v` formatted with `spec` for a table, "n/a" when None."""
    return "n/a" if v is None else format(v, spec)


def write_json(path: Path, result: Any) -> None:
    """Write a benchmark's `result` to `path` (parent folders made) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
