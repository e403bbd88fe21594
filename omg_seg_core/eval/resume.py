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


def save_pickle(path: Path, obj: Any) -> None:
    """Pickle `obj` to `path` atomically: an interrupted save leaves the previous file intact."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load_pickle(path: Path) -> Any:
    """The object pickled at `path`, or None when it is missing, truncated or from incompatible code."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def save_state(path: Path, run: Run) -> None:
    save_pickle(path, run)


def load_state(path: Path, fp: str) -> Optional[Run]:
    run = load_pickle(path)
    return run if isinstance(run, Run) and run.fp == fp else None


__all__ = ["Run", "save_state", "load_state", "save_pickle", "load_pickle"]
