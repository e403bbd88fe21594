"""Helpers shared by the benchmark scripts (not a benchmark itself): percentiles of possibly empty samples and
table cells that show a missing value as n/a."""
from __future__ import annotations

from typing import Optional

import numpy as np


def percentile(v: list[float], q: float) -> Optional[float]:
    """The q-th percentile of `v` (numpy's linear rule), None when `v` is empty."""
    return float(np.percentile(v, q)) if v else None


def cell(v: Optional[float], spec: str = ".1f") -> str:
    """`v` formatted with `spec` for a table, "n/a" when None."""
    return "n/a" if v is None else format(v, spec)
