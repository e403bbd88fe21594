"""Resume state of an evaluation run: one pickle written atomically every few frames (`OUT/state.pkl`).

A run is identified by a fingerprint of its inputs and options; a state with another fingerprint is ignored, so
a changed bag or option never mixes with old results. Frames are processed in source order, so "the first
`frames_done` frames are done" is the whole resume point; the predictor is rebuilt, never pickled.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Optional

from omg_seg_core.eval.runner import Evaluation


class Run:
    """Everything one evaluation holds; pickled as the resume state (the predictor is rebuilt, not pickled)."""

    def __init__(self, fp: str) -> None:
        self.fp = fp
        self.frames_done = 0      # frames of the source consumed (the next frame index to process)
        self.complete = False
        self.ev: Optional[Evaluation] = None
        self.video: Any = None                # tracking.VideoEvaluator (--video)
        self.stq: Any = None                  # stq.STQEvaluator (--video)
        self.tracker: Any = None
        self.classes: Optional[tuple[list[str], list[bool]]] = None
        self.examples: dict[str, str] = {}   # first example of every skip reason
        self.unknown: list[str] = []          # ground-truth classes the model's vocabulary lacks
        self.sequence = 0                     # current video sequence of the source


def save_state(path: Path, run: Run) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(run, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)  # atomic: an interrupted save leaves the previous checkpoint intact


def load_state(path: Path, fp: str) -> Optional[Run]:
    try:
        with open(path, "rb") as f:
            run = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return run if isinstance(run, Run) and run.fp == fp else None


__all__ = ["Run", "save_state", "load_state"]
