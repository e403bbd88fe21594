"""`omg-seg-train`: train / fine-tune an OMG-Seg model with joint panoptic, video, prompt and referring tasks.

    omg-seg-train --config config/train_tiny.yaml [--resume] [--set optim.iters=2000 data.root=DIR ...]
                  [--export models/omg_seg_tiny.pth [--thresholds iou_thr=0.6 ...]]

Writes `<out_dir>/last.pt` (resumable training state, atomically, every few minutes), `<out_dir>/log.jsonl`
(losses, validation) and, with --export, a checkpoint in the shipped format (fp16 unless --fp32). --thresholds
records post-processing values tuned for the model in the checkpoint; the predictor and the node start from them
instead of the official ones (`OMGSegPredictor.default_thresholds`).

Several processes / GPUs (DistributedDataParallel; gloo on CPU, NCCL on CUDA; `optim.batch_size` stays the global
batch, see `omg_seg_core/train/distributed.py`):

    torchrun --standalone --nproc_per_node 8 -m omg_seg_core.cli.train --config ... [--set optim.micro_batch_size=2]

Rank 0 alone logs, validates, writes `last.pt`, exports and prints the summary.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..train.config import TrainConfig
    from ..train.distributed import DistContext


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="omg-seg-train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=None, help="training YAML (config/train_*.yaml)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override config fields, e.g. optim.lr=2e-4 data.image_size=[192,160]")
    ap.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt if it exists")
    ap.add_argument("--export", type=Path, default=None, help="after training, write the shipped-format checkpoint")
    ap.add_argument("--export-only", action="store_true", help="do not train; export <out_dir>/last.pt (needs --export)")
    ap.add_argument("--fp32", action="store_true", help="export in float32 (default fp16)")
    ap.add_argument("--thresholds", nargs="*", default=[], metavar="KEY=VALUE",
                    help="with --export: TaskThresholds values tuned for this model, stored in the checkpoint "
                         "(e.g. iou_thr=0.6); the predictor's and node's defaults")
    a = ap.parse_args(argv)

    from . import parse_overrides
    from ..config import TaskThresholds
    from ..train.config import load_train_config
    from ..train.distributed import DistContext, init_distributed, shutdown_distributed

    rank = DistContext.from_env().rank
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s %(name)s{f' [rank {rank}]' if rank else ''}: %(message)s")
    cfg = load_train_config(a.config, a.set)
    if a.export_only and a.export is None:
        ap.error("--export-only needs --export PATH")
    if a.thresholds and a.export is None:
        ap.error("--thresholds needs --export PATH")
    thresholds = parse_overrides(a.thresholds, "--thresholds")
    try:
        TaskThresholds().updated(**thresholds)
    except (ValueError, TypeError) as e:
        ap.error(f"--thresholds: {e}")
    dist = init_distributed(cfg.device)
    try:
        return _train(a, cfg, dist, thresholds)
    finally:
        shutdown_distributed()


def _train(a: argparse.Namespace, cfg: "TrainConfig", dist: "DistContext", thresholds: dict) -> int:
    """Train (all ranks), then export and report on rank 0."""
    from ..train.trainer import Trainer

    trainer = Trainer(cfg, resume=a.resume or a.export_only, dist=dist)
    if a.export_only:
        if trainer.it == 0:
            print(f"error: no training state in {cfg.out_dir}/last.pt to export", file=sys.stderr)
            return 2
        summary = {"iters": trainer.it, "elapsed_s": trainer.elapsed_s}
    else:
        summary = trainer.run()
    if not dist.is_main:
        return 0
    if a.export is not None:
        summary["export"] = str(trainer.export(a.export, half=not a.fp32,
                                               meta={"command": " ".join(["omg-seg-train"] + sys.argv[1:]),
                                                     **({"thresholds": thresholds} if thresholds else {})}))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
