"""`omg-seg-eval-fleet`: `omg-seg-eval` over many bags on Ray, one model per Ray worker. Guide: docs/evaluation.md.

    omg-seg-eval-fleet BAGS_DIR [MORE ...] --out fleet_out --workers 2 [--ray-address auto] -- --model tiny --video
    omg-seg-eval-fleet 'recordings/**/*.mcap' bags.txt --out fleet_out     # globs (quoted) and manifests
    omg-seg-eval-fleet BAGS_DIR --out ref_out --single-process -- ...     # the one-process reference, no Ray

Everything after `--` is an `omg-seg-eval` option applied to every bag (not --out/--result-bag/--restart).
Work is split per bag: each worker (a Ray actor holding one model; a GPU fraction when the cluster has GPUs)
returns the bag's accumulators, and the merged report adds them up in input order, which equals one process
evaluating every bag (`--single-process`). Writes OUT/bags/<name>/{report.json,report.md,plots,outcome.pkl},
OUT/report.json + report.md + plots (merged), OUT/fleet.json (per-bag status, wall time, frames/s).
Resume: a bag with OUT/bags/<name>/outcome.pkl of the same inputs/options is not evaluated again; failed and
interrupted bags are (Ctrl-C keeps every finished bag). --restart evaluates everything again.
Exit status: 0 = every bag evaluated, 1 = some bags failed (the others are in the merged report), 2 = nothing
evaluated, 130 = interrupted (re-run the same command to resume).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from omg_seg_core.eval.resume import load_pickle, save_pickle
from omg_seg_ros.cli import bag_eval
from omg_seg_ros.cli.fleet_worker import (BagOutcome, BagWorker, bag_options, check_eval_argv, discover,
                                          evaluate_single_process, merge_outcomes, unique_names)


def parse_args(argv: Optional[list[str]] = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    eval_argv = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="omg-seg-eval-fleet", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="bags, folders of bags, globs, manifests, COCO-panoptic .json")
    ap.add_argument("--out", type=Path, default=Path("fleet_out"))
    ap.add_argument("--workers", type=int, default=2, help="Ray actors, each holding one model (default 2)")
    ap.add_argument("--ray-address", help="join this Ray cluster (e.g. auto, ray://head:10001); default: start "
                    "a local Ray on this machine")
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    ap.add_argument("--gpus-per-worker", type=float, help="GPU fraction per actor (default 1 when the cluster "
                    "has GPUs, else 0); 0.5 puts two models on one GPU")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker (default 1)")
    ap.add_argument("--restart", action="store_true", help="evaluate every bag again (ignore finished ones)")
    ap.add_argument("--single-process", action="store_true",
                    help="no Ray: one process, one accumulator over every bag (the reference of the merge)")
    a = ap.parse_args(own)
    if a.workers < 1:
        ap.error("--workers must be >= 1")
    check_eval_argv(eval_argv)
    return a, eval_argv


# ------------------------------------------------------------------------------------------ records
def _bag_dir(out: Path, name: str) -> Path:
    return out / "bags" / name


def load_finished(out: Path, name: str, fp: str) -> Optional[BagOutcome]:
    """The recorded outcome of a finished bag with this fingerprint, or None (missing, stale, unreadable)."""
    o = load_pickle(_bag_dir(out, name) / "outcome.pkl")
    return o if isinstance(o, BagOutcome) and o.fp == fp and o.ok else None


def record(out: Path, o: BagOutcome) -> None:
    """Per-bag report (or failure report), and for a success the outcome pickle (atomic: the resume record)."""
    d = _bag_dir(out, o.name)
    d.mkdir(parents=True, exist_ok=True)
    (d / "outcome.pkl").unlink(missing_ok=True)
    if not o.ok:
        bag_eval.fail(d, o.meta, f"{o.name}: {o.error}", o.stream_skips, o.errors)
        return
    bag_eval.finish(argparse.Namespace(out=d), o.run, dict(o.meta), o.stream_skips, o.errors, quiet=True)
    save_pickle(d / "outcome.pkl", o)


def image_count(bag: Path, eval_argv: Sequence[str]) -> int:
    """Frames a bag will give (image messages, capped by --max-frames), for the progress bar; 0 if unknown."""
    try:
        a = bag_eval.parse_args([str(bag), *eval_argv])
        source, total, _, reader = bag_eval.open_source(a, Counter(), [])
        if reader is not None:
            reader.close()
    except Exception:  # noqa: BLE001 - a bad bag is reported by its worker, not here
        return 0
    return min(total, a.max_frames) if a.max_frames else total


# ---------------------------------------------------------------------------------------------- Ray
class _Progress:
    """Ray actor: frames read per bag since the driver last asked."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def add(self, name: str, n: int) -> None:
        self.counts[name] += n

    def take(self) -> dict[str, int]:
        out, self.counts = dict(self.counts), Counter()
        return out


class _Actor(BagWorker):
    """Ray actor: a BagWorker that reports progress to the `_Progress` actor."""

    def run_bag(self, bag: str, name: str, fp: str, progress: Any) -> BagOutcome:
        return self.evaluate(bag, name, fp, lambda n: progress.add.remote(name, n) if n else None)


def run_on_ray(a: argparse.Namespace, eval_argv: list[str], todo: list[tuple[str, str, str]], bar: Any
               ) -> Iterator[BagOutcome]:
    """Evaluate `todo` (bag, name, fingerprint) on Ray actors; yields each outcome as it finishes. A bag whose
    worker raised or died fails alone (a new actor replaces a dead one); the others go on."""
    import ray

    started = not ray.is_initialized()
    actors: list[Any] = []
    if started and a.ray_address:
        ray.init(address=a.ray_address, log_to_driver=True)
    elif started:
        ray.init(num_cpus=a.num_cpus, include_dashboard=False, object_store_memory=256 << 20)
    try:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        frac = a.gpus_per_worker if a.gpus_per_worker is not None else (1.0 if gpus else 0.0)
        actor_cls = ray.remote(_Actor).options(num_cpus=1, num_gpus=frac, max_concurrency=1)

        def new_actor() -> Any:
            actors.append(actor_cls.remote(eval_argv, a.threads, "cuda" if frac > 0 else None))
            return actors[-1]

        progress = ray.remote(_Progress).options(num_cpus=0).remote()
        queue, inflight = list(todo), {}
        for _ in range(min(a.workers, len(todo))):
            new_actor()

        def submit(actor: Any) -> None:
            if queue:
                bag, name, fp = queue.pop(0)
                inflight[actor.run_bag.remote(bag, name, fp, progress)] = (actor, bag, name, fp)

        for actor in list(actors):
            submit(actor)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            bar.tick(ray.get(progress.take.remote()))
            for ref in ready:
                actor, bag, name, fp = inflight.pop(ref)
                try:
                    o = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    o, actor = BagOutcome(bag, name, fp, error=f"worker died: {e}"), new_actor()
                except ray.exceptions.RayError as e:
                    o = BagOutcome(bag, name, fp, error=f"worker raised: {getattr(e, 'cause', None) or e}")
                bar.tick(ray.get(progress.take.remote()))
                yield o
                submit(actor)
    finally:  # done or interrupted: free the workers (their unfinished bags are simply not recorded)
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


class FleetBar:
    """tqdm over the whole fleet: frames read / total, bags done / total, failures; ETA from the frame rate."""

    def __init__(self, totals: dict[str, int], bags: int) -> None:
        from tqdm import tqdm

        self.totals, self.read = totals, Counter()
        self.bags, self.done, self.failed = bags, 0, 0
        self.bar = tqdm(total=sum(totals.values()) or None, unit="frame", desc="omg-seg-eval-fleet")
        self._post()

    def _post(self) -> None:
        self.bar.set_postfix_str(f"bags {self.done}/{self.bags}" + (f", {self.failed} failed" if self.failed else ""))

    def tick(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.read[name] += n
            self.bar.update(n)

    def finished(self, o: BagOutcome) -> None:
        self.done += 1
        self.failed += not o.ok
        short = self.totals.get(o.name, 0) - self.read[o.name]  # a failed or short bag: its rest will not come
        if short > 0 and self.bar.total:
            self.bar.total -= short
            self.bar.refresh()
        self._post()

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------------------------- main
def write_merged(a: argparse.Namespace, outcomes: list[BagOutcome], fleet: dict, single: Any = None) -> int:
    """Merged report of every successful bag (input order) + fleet.json; returns the exit status. single: the
    one accumulator of --single-process (already holds every bag; nothing to merge)."""
    if single is None:
        merged, skips, errors, names = merge_outcomes(outcomes)
    else:
        merged, skips = single, sum((o.stream_skips for o in outcomes if o.ok), Counter())
        errors = [f"{o.name}: {e}" for o in outcomes if o.ok for e in o.errors]
        names = [o.name for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    errors += [f"{o.name}: FAILED: {o.error}" for o in failed]
    fleet["bags_merged"] = names
    (a.out / "fleet.json").write_text(json.dumps(fleet, indent=1, default=str))
    first = next((dict(o.meta) for o in outcomes if o.ok), {})
    first.pop("input", None)
    meta = {"inputs": [str(i) for i in a.inputs], "bags_evaluated": len(names), "bags_failed": len(failed),
            "fleet": "fleet.json", **first}
    if merged is None:
        bag_eval.fail(a.out, meta, "no bag could be evaluated", skips, errors)
        return 2
    rc = bag_eval.finish(argparse.Namespace(out=a.out), merged, meta, skips, errors)
    for o in failed:
        print(f"  FAILED {o.name}: {o.error}", file=sys.stderr)
    return 1 if (failed or len(names) < sum(o.ok for o in outcomes)) else rc


def main(argv: Optional[list[str]] = None) -> int:
    a, eval_argv = parse_args(argv)
    bags = discover(a.inputs)
    if not bags:
        print(f"error: no bag found in {a.inputs}", file=sys.stderr)
        return 2
    names = unique_names(bags)
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fleet: dict[str, Any] = {"workers": 0 if a.single_process else a.workers, "ray_address": a.ray_address,
                             "eval_options": eval_argv, "bags": {}}
    if a.single_process:
        done, run = evaluate_single_process(bags, names, eval_argv, a.threads)
        wall = time.perf_counter() - t0
        frames = sum(o.frames for o in done)
        fleet.update(wall_s=round(wall, 3), frames_evaluated_now=frames,
                     frames_per_s=round(frames / wall, 3) if frames else None, total_s=round(wall, 3))
        fleet["bags"] = {o.name: {"bag": o.bag, "status": "done" if o.ok else "failed", "frames": o.frames,
                                  "seconds": round(o.seconds, 3), "error": o.error} for o in done}
        return write_merged(a, done, fleet, single=run)
    outcomes: dict[str, BagOutcome] = {}
    todo: list[tuple[str, str, str]] = []
    for bag, name in zip(bags, names):
        fp = bag_options(str(bag), eval_argv)[2]
        done = None if a.restart else load_finished(a.out, name, fp)
        if done is not None:
            outcomes[name] = done
            fleet["bags"][name] = {"bag": str(bag), "status": "done earlier (resumed)", "frames": done.frames}
        else:
            todo.append((str(bag), name, fp))
    if outcomes:
        print(f"resuming: {len(outcomes)} of {len(bags)} bags finished earlier; --restart evaluates them again",
              file=sys.stderr)
    bar = FleetBar({n: image_count(Path(b), eval_argv) for b, n, _ in todo}, len(todo))
    frames, t_fleet, rc = 0, time.perf_counter(), 0
    results = run_on_ray(a, eval_argv, todo, bar) if todo else iter(())
    try:
        for o in results:
            outcomes[o.name] = o
            frames += o.frames
            fleet["bags"][o.name] = {"bag": o.bag, "status": "done" if o.ok else "failed", "frames": o.frames,
                                     "seconds": round(o.seconds, 3), "error": o.error}
            record(a.out, o)
            bar.finished(o)
    except KeyboardInterrupt:
        rc = 130
        print(f"\ninterrupted: {sum(o.ok for o in outcomes.values())} bags finished and recorded under "
              f"{a.out / 'bags'}; re-run the same command to evaluate the rest", file=sys.stderr)
    finally:
        results.close() if hasattr(results, "close") else None  # stops the actors (and a local Ray)
        bar.close()
    wall = time.perf_counter() - t_fleet
    fleet.update(wall_s=round(wall, 3), frames_evaluated_now=frames,
                 frames_per_s=round(frames / wall, 3) if wall > 0 and frames else None,
                 total_s=round(time.perf_counter() - t0, 3), interrupted=rc == 130)
    fleet["bags"] = {n: fleet["bags"].get(n, {"status": "not started (interrupted)"}) for n in names}
    for n, b in fleet["bags"].items():  # the records on disk are the truth a re-run resumes from
        if b["status"] == "done" and not (_bag_dir(a.out, n) / "outcome.pkl").is_file():
            b["status"] = "evaluated, not recorded (interrupted): evaluated again on a re-run"
    status = write_merged(a, [outcomes[n] for n in names if n in outcomes], fleet)
    return rc or status


if __name__ == "__main__":
    sys.exit(main())
