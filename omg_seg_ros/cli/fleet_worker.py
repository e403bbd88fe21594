"""The per-bag work of `omg-seg-eval-fleet` (Ray-free; fleet_eval.py wraps `BagWorker` in a Ray actor).

* `discover` turns folders, globs and manifests into an ordered list of inputs (bags, COCO-panoptic .json);
* `BagWorker` holds one model (built at its first bag) and evaluates one input into its OWN accumulators (a
  `resume.Run`: counts, exact sums, per-sequence tables; never averages) through `bag_eval.feed`, the same
  frame loop as `omg-seg-eval`;
* `merge_outcomes` merges finished inputs in input order (the evaluators' `merge`), which equals
  `evaluate_single_process`: one process feeding every input into one accumulator (the reference the tests
  compare with, bit for bit except wall-clock latencies).
"""
from __future__ import annotations

import copy
import glob
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omg_seg_core.eval.resume import Run
from omg_seg_ros.bag.io import BagError
from omg_seg_ros.cli import bag_eval

BAG_SUFFIXES = (".mcap", ".db3")
MANIFEST_SUFFIXES = (".txt", ".list", ".manifest")
_FORBIDDEN = ("--out", "--result-bag", "--restart", "--checkpoint-every")


@dataclass
class BagOutcome:
    """One input's evaluation: its accumulators (`run`, None when it failed) and what the report needs."""

    bag: str
    name: str
    fp: str
    run: Optional[Run] = None
    meta: dict = field(default_factory=dict)
    stream_skips: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    error: Optional[str] = None        # why nothing of this input could be evaluated (it failed alone)
    frames: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.run is not None and self.run.ev is not None


def _expand(p: Path) -> list[Path]:
    if p.is_file():
        return [p] if p.suffix in (*BAG_SUFFIXES, ".json") else []
    if (p / "metadata.yaml").is_file():
        return [p]
    if p.is_dir():
        bags = [m.parent for m in p.rglob("metadata.yaml")]
        loose = [f for f in p.rglob("*") if f.suffix in BAG_SUFFIXES and not any(b in f.parents for b in bags)]
        return sorted(bags + loose)
    return [p]  # missing: kept, so that it fails alone with the reader's message


def discover(inputs: Sequence[str]) -> list[Path]:
    """Inputs in a fixed order (the merge order): each argument is a bag (folder / .mcap / .db3), a COCO-panoptic
    annotations .json, a folder searched recursively for bags, a glob (quoted; ** recurses) or a manifest
    (.txt/.list/.manifest: one path per line, relative to the manifest, # comments). Duplicates are dropped."""
    out: list[Path] = []
    for text in inputs:
        p = Path(text)
        if any(ch in text for ch in "*?["):
            for m in sorted(glob.glob(text, recursive=True)):
                out += _expand(Path(m))
        elif p.suffix in MANIFEST_SUFFIXES and p.is_file():
            for line in p.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    q = Path(line)
                    out.append(q if q.is_absolute() else p.parent / q)
        else:
            out += _expand(p)
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def unique_names(bags: Sequence[Path]) -> list[str]:
    """Readable, unique folder names for the per-input reports: the path below the inputs' common folder."""
    paths = [str(b.resolve()) for b in bags]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    names: list[str] = []
    for p in paths:
        base = os.path.relpath(p, root).replace(os.sep, "__") or Path(p).name
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}-{k}"
        names.append(name)
    return names


def check_eval_argv(eval_argv: Sequence[str]) -> None:
    """Reject the per-run options the fleet owns; argparse errors on the others exit like omg-seg-eval."""
    bad = [x for x in eval_argv if x.split("=", 1)[0] in _FORBIDDEN]
    if bad:
        raise SystemExit(f"error: {', '.join(bad)} cannot be given to the fleet's per-bag evaluation")
    bag_eval.parse_args(["input.mcap", *eval_argv])


def bag_options(bag: str, eval_argv: Sequence[str], device: Optional[str] = None) -> tuple[Any, dict, str]:
    """(omg-seg-eval arguments, node parameter values, run fingerprint) of one input; `device` (e.g. "cuda" on
    a Ray GPU worker) applies unless --device / --params chose one."""
    a = bag_eval.parse_args([bag, *eval_argv])
    values = bag_eval.node_values(a)
    if device and "device" not in values:
        values["device"] = device
    return a, values, bag_eval.fingerprint(a, values)


class BagWorker:
    """Evaluates inputs one after the other with one model (built at the first input, kept for the others)."""

    def __init__(self, eval_argv: Sequence[str], threads: int = 1, device: Optional[str] = None) -> None:
        self.eval_argv, self.device = list(eval_argv), device
        self.ctx: Optional[bag_eval.Context] = None
        self._classmap: Any = None
        try:  # a fixed thread count: CPU results then do not depend on the worker's core count
            import torch

            torch.set_num_threads(max(1, int(threads)))
        except ImportError:
            pass

    def _context(self, a: Any, values: dict) -> bag_eval.Context:
        if self.ctx is None:
            self.ctx = bag_eval.Context(a, values)
            self._classmap = copy.deepcopy(self.ctx.classmap)
        self.ctx.a = a
        self.ctx.classmap = copy.deepcopy(self._classmap)  # each input freezes its own class list
        if self.ctx.session is not None:
            self.ctx.session.reset_tracks("new bag")
        return self.ctx

    def evaluate(self, bag: str, name: str, fp: str, report: Callable[[int], None] = lambda n: None,
                 run: Optional[Run] = None) -> BagOutcome:
        """Evaluate one input into a new Run (or continue `run`, the single-process reference: a new sequence
        after the frames already there). report(n) is told every few frames read. Never raises for a bad input:
        the outcome's `error` says why it failed."""
        t0 = time.perf_counter()
        a, values, _ = bag_options(bag, self.eval_argv, self.device)
        out = BagOutcome(bag, name, fp)
        out.meta = {"input": bag, "mode": "video" if a.video else "frames",
                    "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        try:
            source, total, topics_meta, reader = bag_eval.open_source(a, out.stream_skips, out.errors)
        except (BagError, FileNotFoundError, ValueError) as e:
            out.error = str(e)
            return out
        pending, done = [0], [0]

        def on_frame(_: Run, processed: bool) -> None:
            pending[0] += 1
            if pending[0] >= 4:
                report(pending[0])
                done[0] += pending[0]
                pending[0] = 0

        try:
            ctx = self._context(a, values)
            run = run if run is not None else Run(fp)
            if run.ev is not None:  # single-process reference: this input continues the shared accumulators
                run.frames_done, run.sequence = 0, 0
                ctx.classmap.restore(*run.classes)
                if run.video is not None:
                    run.video.start_sequence()
                    run.stq.start_sequence()
            feed_from = len(run.ev.frames) if run.ev is not None else 0
            bag_eval.feed(ctx, run, source, a.max_frames or None, on_frame)
        except (bag_eval.SetupError, FileNotFoundError) as e:
            out.error = str(e)
            return out
        except Exception as e:  # noqa: BLE001 - a bag unreadable half-way fails alone; the fleet goes on
            out.error = f"{type(e).__name__}: {e}"
            return out
        finally:
            report(pending[0])
            if reader is not None:
                reader.close()
        out.meta.update(topics_meta, **bag_eval.model_meta(a, values))
        if run.ev is None:
            out.error = "no frame could be read"
            return out
        run.ev.label_source(name)
        run.tracker = None  # the model's tracker stays with the worker; the accumulators travel
        run.complete = not out.errors and not a.max_frames
        out.run, out.frames = run, len(run.ev.frames) - feed_from
        out.seconds = time.perf_counter() - t0
        return out


def merge_outcomes(outcomes: Sequence[BagOutcome]) -> tuple[Optional[Run], Counter, list[str], list[str]]:
    """Merge the successful outcomes in the given order -> (run, stream skips, errors, names merged). An input
    whose class list differs from the first one's is left out with an error (its own report stands)."""
    merged: Optional[Run] = None
    skips: Counter = Counter()
    errors: list[str] = []
    names: list[str] = []
    for o in outcomes:
        if not o.ok:
            continue
        if merged is None:
            merged = copy.deepcopy(o.run)
        else:
            r = o.run
            if r.classes != merged.classes or (r.video is None) != (merged.video is None):
                errors.append(f"{o.name}: class list (or mode) differs from {names[0]}'s; left out of the merge")
                continue
            merged.ev.merge(r.ev)
            if merged.video is not None:
                merged.video.merge(r.video)
                merged.stq.merge(r.stq)
            for why, example in r.examples.items():
                merged.examples.setdefault(why, f"{o.name}: {example}")
            merged.unknown += [u for u in r.unknown if u not in merged.unknown]
            merged.frames_done += r.frames_done
            merged.complete = merged.complete and r.complete
        skips.update(o.stream_skips)
        errors += [f"{o.name}: {e}" for e in o.errors]
        names.append(o.name)
    return merged, skips, errors, names


def evaluate_single_process(bags: Sequence[Path], names: Sequence[str], eval_argv: Sequence[str],
                            threads: int = 1) -> tuple[list[BagOutcome], Optional[Run]]:
    """The reference: every input fed, in order, into ONE accumulator in this process (no Ray, no merge).
    Returns the per-input outcomes (for failures and timing; their `run` is the shared one) and that Run."""
    worker = BagWorker(eval_argv, threads)
    shared: Optional[Run] = None
    outcomes = []
    for bag, name in zip(bags, names):
        fp = bag_options(str(bag), eval_argv)[2]
        o = worker.evaluate(str(bag), name, fp, run=shared)
        if o.ok:
            shared = o.run
        outcomes.append(o)
    return outcomes, shared


__all__ = ["BagOutcome", "BagWorker", "discover", "unique_names", "check_eval_argv", "bag_options",
           "merge_outcomes", "evaluate_single_process"]
