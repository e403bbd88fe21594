"""Latency statistics per stage (ms): the predictor's `last_timings` plus any wall-clock stage the caller adds."""
from __future__ import annotations

from typing import Mapping

import numpy as np


class LatencyRecorder:
    """Collects one sample per stage per frame; `evaluate()` gives p50 / p95 / mean / max / count per stage."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def process(self, timings_ms: Mapping[str, float]) -> None:
        for stage, ms in timings_ms.items():
            if ms is None or not np.isfinite(ms):
                continue
            self.samples.setdefault(str(stage), []).append(float(ms))

    def evaluate(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, xs in self.samples.items():
            a = np.asarray(xs, np.float64)
            out[stage] = {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
                          "mean": float(a.mean()), "max": float(a.max()), "count": int(a.size)}
        return out

    def merge(self, other: "LatencyRecorder") -> None:
        """Append another recorder's samples after ours (percentiles are over every sample)."""
        for stage, xs in other.samples.items():
            self.samples.setdefault(stage, []).extend(xs)

    def state_dict(self) -> dict:
        return {k: list(v) for k, v in self.samples.items()}

    def load_state_dict(self, state: dict) -> None:
        self.samples = {k: [float(x) for x in v] for k, v in state.items()}


__all__ = ["LatencyRecorder"]
