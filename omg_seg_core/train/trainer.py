"""The training loop of `omg-seg-train`: optimiser, schedule, resumable checkpoints, validation, progress.

Determinism: every random choice derives from `cfg.seed` (torch / numpy generators whose states are saved in the
checkpoint), and the data of iteration i depends only on (data seed, i), so a resumed run continues exactly where
the interrupted one was. Checkpoints (`<out_dir>/last.pt`) are written atomically (temp file + rename) every
`ckpt_every_s` seconds, at validation and at the end; `--resume` continues from them.

Several processes (`torchrun`): `distributed.py` states the conventions (global batch, micro-batches, gradient
accumulation, per-rank data, rank-0 logging / validation / checkpoints). With one process and no accumulation
(M = 1 micro-batch per step) every number is the same as before data parallelism existed.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig, get_model_config
from ..model.checkpoint import load_model, save_checkpoint
from ..model.omg_seg import OMGSeg, build_model
from ..model.pixel_decoder import fewer_encoder_levels, fewer_encoder_points
from ..text import make_text_encoder
from ..text.sentence_text import TextProjection, set_one_text_per_call
from ..text.vocabulary import Vocabulary
from .config import TrainConfig
from .data import collate
from .distributed import (DistContext, merge_stats, micro_indices, plan_micro_batches, sync_context,
                          wrap_ddp)
from .sources import BatchSampler, make_source
from .step import CoTrainingLoss

log = logging.getLogger(__name__)
TRAIN_STATE_FORMAT = "omg_seg_train_state/1"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def build_train_model(cfg: TrainConfig) -> tuple[OMGSeg, dict[str, Any], Optional[OMGSeg]]:
    """The model to train, its loader meta, and the frozen teacher of `loss.distill` (None when that is 0): the
    `teacher_checkpoint` model when set, else the init_checkpoint model as loaded (one load serves both; a copy when
    the student is that same model).

    - `init_checkpoint` set: `load_model(cfg.model, weights=init_checkpoint, backbone_weights=...)` (our format, or
      the official `omg_seg_convl.pth` head + the open_clip ConvNeXt-L file for head fine-tuning);
    - else a fresh head on the config's pretrained backbone (efficientnet_lite0: packaged ImageNet weights).
    A MiniLM model has a learned `text_projection` (trained with the rest, stored with the model's state_dict).
    """
    teacher = None
    if cfg.init_checkpoint:
        model, meta = load_model(cfg.model, weights=cfg.init_checkpoint, backbone_weights=cfg.backbone_weights)
        if cfg.loss.distill > 0 and cfg.teacher_checkpoint:
            teacher = frozen(load_model(cfg.model, weights=cfg.teacher_checkpoint,
                                        backbone_weights=cfg.backbone_weights)[0])
        elif cfg.loss.distill > 0:
            teacher = frozen(model if cfg.model_changes else copy.deepcopy(model))
        if cfg.model_changes:
            model = changed_model(model, cfg.model_changes)
        if teacher is not None and any(getattr(teacher.cfg, k) != getattr(model.cfg, k)
                                       for k in ("embed_dim", "num_feature_levels")):
            raise ValueError(f"loss.distill: the teacher's pixel decoder (embed_dim {teacher.cfg.embed_dim}, "
                             f"{teacher.cfg.num_feature_levels} levels) does not give the student's outputs "
                             f"(embed_dim {model.cfg.embed_dim}, {model.cfg.num_feature_levels} levels)")
    else:
        mcfg = get_model_config(cfg.model)
        if mcfg.backbone.startswith("clip_") and not cfg.backbone_weights:
            raise ValueError(f"model '{mcfg.name}': set backbone_weights (open_clip {mcfg.backbone} file); "
                             "its backbone cannot be trained from scratch here")
        model = build_model(mcfg, pretrained_backbone=cfg.backbone_weights or True)
        meta = {"text_weights": cfg.backbone_weights if mcfg.text_encoder.startswith("clip_") else None}
    if model.cfg.text_encoder == "minilm_l6" and getattr(model, "text_projection", None) is None:
        model.text_projection = TextProjection(model.cfg.class_embed_dim)  # models built before OMGSeg owned it
    if hasattr(model.backbone, "frozen_stages") and not cfg.freeze_backbone:
        model.backbone.frozen_stages = cfg.frozen_stages
        model.backbone.train()
    if cfg.freeze_backbone:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    return model, meta, teacher


def changed_model(model: OMGSeg, changes: dict[str, Any]) -> OMGSeg:
    """A model built from `model.cfg` with `changes` applied (e.g. {"num_encoder_layers": 1}), holding every tensor
    of `model` whose name and shape it still has; the others (a new layer, a changed width) keep their fresh
    initialisation. Dropped layers are the last ones (a 1-layer encoder keeps layer 0); fewer encoder levels keep the
    coarsest ones (`pixel_decoder.fewer_encoder_levels`), fewer sampling points the first ones
    (`pixel_decoder.fewer_encoder_points`). Logs what was kept."""
    try:
        cfg = ModelConfig.from_dict({**model.cfg.to_dict(), **changes})
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_changes {changes}: {e}") from None
    new = build_model(cfg, pretrained_backbone=False)
    old_sd, new_sd = model.state_dict(), new.state_dict()
    if cfg.num_encoder_levels < model.cfg.num_encoder_levels:  # the given-up maps' projections become FPN laterals
        old_sd = fewer_encoder_levels(old_sd, model.cfg.num_encoder_levels, cfg.num_encoder_levels,
                                      model.cfg.num_heads, model.cfg.encoder_num_points)
    if cfg.encoder_num_points < model.cfg.encoder_num_points:  # the nearest points of each head and level stay
        old_sd = fewer_encoder_points(old_sd, model.cfg.encoder_num_points, cfg.encoder_num_points,
                                      model.cfg.num_heads, cfg.num_encoder_levels)
    kept = {k: v for k, v in old_sd.items() if k in new_sd and new_sd[k].shape == v.shape}
    new.load_state_dict(kept, strict=False)
    fresh = sorted(k for k in new_sd if k not in kept)
    log.info("model_changes %s: kept %d of %d tensors, dropped %d, fresh %d%s", changes, len(kept), len(new_sd),
             len(set(old_sd) - set(kept)), len(fresh), f" ({fresh[:4]}...)" if fresh else "")
    return new.to(next(model.parameters()).dtype)


def frozen(model: OMGSeg) -> OMGSeg:
    """`model` in eval mode without gradients (the distillation teacher)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def lr_factor(it: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the base learning rate."""
    if it < warmup:
        return (it + 1) / max(warmup, 1)
    t = min(1.0, (it - warmup) / max(total - warmup, 1))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


class Trainer:
    """Owns model, optimiser, data and loss; `run()` trains to `cfg.optim.iters` or `cfg.max_minutes`.

    `dist`: this process's place in a torchrun job (`init_distributed`); None = a single process. `self.model` is
    always the unwrapped model (what checkpoints and exports hold); `self.ddp` its DDP wrapper, or None."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, dist: Optional[DistContext] = None) -> None:
        self.cfg = cfg
        self.dist = dist or DistContext()
        self.micro_batch, self.accum = plan_micro_batches(cfg.optim.batch_size, cfg.optim.micro_batch_size,
                                                          self.dist.world_size)
        self.n_micro = self.dist.world_size * self.accum  # micro-batches per optimiser step, all processes
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.device = self.dist.device(cfg.device)
        self.out_dir = Path(cfg.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model, meta, teacher = build_train_model(cfg)
        self.model.to(self.device)
        self.source = make_source(cfg.data)
        self.vocab: Vocabulary = self.source.vocabulary
        trainable_text = getattr(self.model, "text_projection", None) is not None
        self.encoder = make_text_encoder(self.model.cfg.text_encoder, self.model, weights=meta.get("text_weights"))
        if self.n_micro > 1:
            set_one_text_per_call(True)  # micro-batch results must not depend on which process ran before
        if teacher is not None:
            teacher.to(self.device)
        self.loss = CoTrainingLoss(cfg.loss, self.vocab, self.encoder, trainable_text, self.model.cfg.logit_scale,
                                   seed=cfg.seed, teacher=teacher)
        self.sampler = BatchSampler(self.source, cfg.data, self.micro_batch, seed=cfg.seed)
        if self.n_micro > 1 and cfg.data.video_fraction > 0 and self.source.has_pairs and not self.sampler.n_pairs:
            log.warning("data: a micro-batch of %d images holds no frame pair at video_fraction=%g; raise "
                        "optim.micro_batch_size or data.video_fraction", self.micro_batch, cfg.data.video_fraction)
        bb = [p for p in self.model.backbone.parameters() if p.requires_grad]
        bb_ids = {id(p) for p in bb}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in bb_ids]
        groups = [{"params": rest, "lr_mult": 1.0}]
        if bb:
            groups.append({"params": bb, "lr_mult": cfg.optim.backbone_lr_mult})
        self.opt = torch.optim.AdamW(groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                     foreach=True)  # the per-tensor loop is several times slower on CPU
        self.it = 0
        self.elapsed_s = 0.0      # training wall time over all resumed segments
        self.history: list[dict[str, float]] = []
        if resume and (self.out_dir / "last.pt").exists():
            self.load_state(self.out_dir / "last.pt")
        # after requires_grad is final and the state is loaded (DDP broadcasts rank 0's parameters and buffers)
        self.ddp = wrap_ddp(self.model, self.loss, self.dist, self.device) if self.dist.enabled else None

    # ---- checkpoints -------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": TRAIN_STATE_FORMAT, "train_config": self.cfg.to_dict(), "model_config": self.model.cfg.to_dict(),
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "iter": self.it,
                "elapsed_s": self.elapsed_s, "history": self.history[-2000:],
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                        "loss_gen": self.loss.gen.get_state(), "sampler": self.sampler.state_dict()},
                "vocabulary": self.vocab.to_dict(),
                "parallel": {"world_size": self.dist.world_size, "micro_batch_size": self.micro_batch,
                             "accum_steps": self.accum}}  # informative: any other layout resumes it

    def save_state(self, path: Optional[Path] = None) -> Path:
        path = Path(path or self.out_dir / "last.pt")
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def load_state(self, path: Path) -> None:
        st = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(st, dict) or st.get("format") != TRAIN_STATE_FORMAT:
            raise ValueError(f"{path}: not an omg-seg training state (field 'format' is "
                             f"{st.get('format') if isinstance(st, dict) else type(st).__name__!r})")
        # Through ModelConfig so states of older versions (with since-removed fields such as dtype) compare.
        try:
            saved = ModelConfig.from_dict(st["model_config"]).to_dict()
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: field 'model_config' is not a model config: {e}") from None
        current = self.model.cfg.to_dict()
        if saved != current:
            diff = {k: (v, current.get(k)) for k, v in saved.items() if current.get(k) != v}
            raise ValueError(f"{path}: field 'model_config' differs from this run's model: {diff}")
        self.model.load_state_dict(st["model"], strict=True)
        self.opt.load_state_dict(st["optimizer"])
        self.it = int(st["iter"])
        self.elapsed_s = float(st.get("elapsed_s", 0.0))
        self.history = list(st.get("history", []))
        rng = st["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self.loss.gen.set_state(rng["loss_gen"])
        self.sampler.load_state_dict(rng["sampler"])
        log.info("resumed %s at iteration %d (%.1f min trained; written by %s)", path, self.it,
                 self.elapsed_s / 60, st.get("parallel", {"world_size": 1}))

    def export(self, path: Path, half: bool = True, meta: Optional[dict[str, Any]] = None) -> Path:
        """Write the shipped format (`model/checkpoint.py`: {"format": "omg_seg_ros/1", ...})."""
        m = {"trained_iters": self.it, "train_wall_s": round(self.elapsed_s, 1), "seed": self.cfg.seed,
             "train_config": self.cfg.to_dict(), **(meta or {})}
        return save_checkpoint(path, self.model, self.vocab.to_dict(), meta=m, half=half)

    # ---- loop --------------------------------------------------------------------------------------------------
    def set_lr(self) -> float:
        f = lr_factor(self.it, self.cfg.optim.warmup_iters, self.cfg.optim.iters)
        for g in self.opt.param_groups:
            g["lr"] = self.cfg.optim.lr * f * g["lr_mult"]
        return self.cfg.optim.lr * f

    def micro_step(self, k: int, last: bool) -> dict[str, float]:
        """Forward + backward of data step k (distributed.py); gradients accumulate in `.grad`, the loss divided
        by the accumulation count. With several micro-batches per step, the torch and point-sampling generators
        are re-seeded from (seed, k) so that the result does not depend on which process runs k."""
        if self.n_micro > 1:
            torch.manual_seed(int(self.sampler.rng_for(k, "torch").integers(2 ** 62)))
            self.loss.gen.manual_seed(int(self.sampler.rng_for(k, "points").integers(2 ** 62)))
        samples, pairs = self.sampler.batch(k)
        batch = collate(samples, pairs, self.cfg.loss.prompts_per_image, self.cfg.loss.click_fraction,
                        self.sampler.rng_for(k, "prompts"), self.model.cfg.pad_size_divisor)
        batch.images = batch.images.to(self.device)
        batch.masks = [m.to(self.device) for m in batch.masks]
        batch.labels = [l.to(self.device) for l in batch.labels]
        batch.instance_ids = [i.to(self.device) for i in batch.instance_ids]
        with sync_context(self.ddp, last):
            out = self.ddp(batch) if self.ddp is not None else self.loss(self.model, batch)
            if not torch.isfinite(out.total):
                where = f" (data step {k}, rank {self.dist.rank})" if self.n_micro > 1 else ""
                raise FloatingPointError(f"iteration {self.it}{where}: non-finite loss {out.stats}")
            (out.total / self.accum if self.accum > 1 else out.total).backward()
        return dict(out.stats, total=float(out.total.detach()))

    def train_step(self) -> dict[str, float]:
        self.model.train()
        if self.cfg.freeze_backbone:
            self.model.backbone.eval()  # frozen: no dropout / drop-path, fixed normalisation statistics
        lr = self.set_lr()
        self.opt.zero_grad(set_to_none=True)
        ks = list(micro_indices(self.it, self.dist, self.accum))
        local = [self.micro_step(k, last=j == len(ks) - 1) for j, k in enumerate(ks)]
        # gradients are now the mean over all M micro-batches on every rank (DDP all-reduce), so clipping and
        # the optimiser step agree everywhere
        gn = torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                            self.cfg.optim.grad_clip)
        self.opt.step()
        gathered = self.dist.gather((local, self.sampler.skipped))
        stats = dict(merge_stats([s for st, _ in gathered for s in st]), lr=lr, grad_norm=float(gn),
                     iter=self.it, skipped=float(sum(n for _, n in gathered)))
        self.it += 1
        return stats

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss terms over the fixed validation batches (same data every time, so curves are comparable)."""
        self.model.eval()
        gen_state = self.loss.gen.get_state()
        self.loss.gen.manual_seed(12345)
        acc: dict[str, float] = {}
        batches = self.sampler.val_batches()
        for samples in batches:
            batch = collate(samples, [], self.cfg.loss.prompts_per_image, self.cfg.loss.click_fraction,
                            np.random.default_rng(0), self.model.cfg.pad_size_divisor)
            batch.images = batch.images.to(self.device)
            batch.masks = [m.to(self.device) for m in batch.masks]
            batch.labels = [l.to(self.device) for l in batch.labels]
            out = self.loss(self.model, batch)
            for k, v in out.stats.items():
                acc[k] = acc.get(k, 0.0) + v / len(batches)
            acc["total"] = acc.get("total", 0.0) + float(out.total) / len(batches)
        self.loss.gen.set_state(gen_state)
        return {f"val_{k}": v for k, v in acc.items()}

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        t_start = time.time()
        base_elapsed = self.elapsed_s
        last_ckpt = time.time()
        log_path = self.out_dir / "log.jsonl"
        main = self.dist.is_main
        bar = tqdm(total=cfg.optim.iters, initial=self.it, desc="omg-seg-train", dynamic_ncols=True,
                   disable=not main)
        stop_reason = "iters"
        while self.it < cfg.optim.iters:
            stats = self.train_step()
            self.elapsed_s = base_elapsed + time.time() - t_start
            stats["elapsed_s"] = self.elapsed_s
            self.history.append({k: round(v, 5) for k, v in stats.items()})
            bar.update(1)
            if not main:  # other ranks only take part in the collectives (gradients, stats, stop decision)
                if cfg.max_minutes and self.dist.any(False, self.device):
                    stop_reason = "max_minutes"
                    break
                continue
            if self.it % cfg.log_every == 0 or self.it == 1:
                bar.set_postfix(loss=f"{stats['total']:.3f}", lr=f"{stats['lr']:.1e}")
                with open(log_path, "a") as f:
                    f.write(json.dumps(stats) + "\n")
            if cfg.val_every and self.it % cfg.val_every == 0:
                v = self.validate()
                v["iter"] = self.it
                with open(log_path, "a") as f:
                    f.write(json.dumps(v) + "\n")
                bar.write(f"[val @ {self.it}] " + " ".join(f"{k}={x:.3f}" for k, x in v.items() if k != "iter"))
                self.save_state()
                last_ckpt = time.time()
            if time.time() - last_ckpt >= cfg.ckpt_every_s:
                self.save_state()
                last_ckpt = time.time()
            if cfg.max_minutes and self.dist.any(self.elapsed_s >= cfg.max_minutes * 60, self.device):
                stop_reason = "max_minutes"  # rank 0's clock decides for all
                break
        bar.close()
        if main:
            self.save_state()
        self.dist.barrier()  # every rank returns once last.pt is complete
        return {"iters": self.it, "elapsed_s": self.elapsed_s, "stop": stop_reason,
                "skipped_samples": sum(self.dist.gather(self.sampler.skipped))}


__all__ = ["Trainer", "build_train_model", "changed_model", "frozen", "lr_factor", "seed_everything",
           "TRAIN_STATE_FORMAT"]
