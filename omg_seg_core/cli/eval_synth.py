"""`omg-seg-eval-synth`: PQ, semantic mIoU, click / box mIoU and referring accuracy (seen / held-out colour-shape
combinations) of a model on generated held-out scenes (see omg_seg_core/train/synth_eval.py).

    omg-seg-eval-synth [--checkpoint models/omg_seg_tiny.pth] [--images 100] [--seed 7] [--speed] [--json OUT]
                       [--thresholds prompt_source=decoder box_prompt_margin=-1 ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional

from . import parse_overrides


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 320x240, got {text!r}") from None
    return w, h


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="omg-seg-eval-synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="omg_seg_tiny", help="model name (default omg_seg_tiny)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: models/<model>.pth)")
    ap.add_argument("--images", type=int, default=100, help="number of held-out scenes")
    ap.add_argument("--seed", type=int, default=7, help="held-out split seed")
    ap.add_argument("--split", default="heldout", choices=("heldout", "novel", "val"))
    ap.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT of the scenes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--speed", action="store_true", help="also time set_image+panoptic, prompt and text")
    ap.add_argument("--json", type=Path, default=None, help="write all metrics here")
    ap.add_argument("--thresholds", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TaskThresholds overrides, e.g. prompt_source=decoder box_prompt_margin=-1")
    a = ap.parse_args(argv)
    if a.images < 1:
        ap.error("--images must be >= 1")

    import torch

    from ..data.synth import world
    from ..predict import build_predictor
    from ..train.synth_eval import evaluate_frames, format_report, heldout_frames, measure_speed

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.speed:  # time what the node runs: it tunes malloc at start-up (runtime/allocator.py)
        from ..runtime.allocator import tune_allocator

        tune_allocator()
    pred = build_predictor(a.model, checkpoint=a.checkpoint, vocabulary=world.vocabulary_path())
    try:
        pred.set_thresholds(**parse_overrides(a.thresholds, "--thresholds"))
    except (TypeError, ValueError) as e:
        ap.error(str(e))
    frames = heldout_frames(a.images, a.seed, a.size, a.split)
    with torch.inference_mode():
        metrics = evaluate_frames(pred, frames, progress=True)
        speed = measure_speed(pred, frames) if a.speed else None
    metrics.update(model=a.model, checkpoint=str(a.checkpoint or ""), seed=a.seed, split=a.split,
                   size=list(a.size), threads=torch.get_num_threads(), speed=speed,
                   thresholds=dataclasses.asdict(pred.thresholds))
    print(format_report(metrics, speed))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(metrics, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
