"""Data-parallel training over several processes (`torchrun --nproc_per_node N omg-seg-train ...`).

Conventions (the single-process run is the special case world_size=1, and is unchanged by this module):

- `optim.batch_size` is the GLOBAL batch of one optimiser step. It is split into M = world_size x accum
  micro-batches of `optim.micro_batch_size` images (0: batch_size / world_size, no accumulation). Each process
  runs `accum` forward/backward passes; DistributedDataParallel (DDP) averages the gradients over processes, and
  the loss is divided by `accum`, so the step's gradient is the MEAN over the M micro-batches' gradients.
- Micro-batch m (0 <= m < M) of iteration `it` is data step k = it*M + m of a `BatchSampler` of micro-batch
  size: its images, crops, prompts and (for M > 1) the torch / point-sampling RNG seeds depend only on
  (seed, k). Process r runs m = r*accum + a for a = 0..accum-1, so every rank sees its own scenes, and a run
  with the same M gives the same micro-batches whatever the number of processes: 2 processes x 1 accumulation
  step and 1 process x 2 accumulation steps train on identical data and differ only by float rounding.
- Each micro-batch's loss is normalised by its own masks / prompts / phrases (Mask2Former-style losses are not
  additive over images), and BatchNorm layers see one micro-batch. A run with micro-batch = global batch
  (M = 1) is therefore a different, equally valid objective, not bit-for-bit the same as M > 1.
- BatchNorm running statistics (buffers, only used in eval mode) follow rank 0: DDP broadcasts rank 0's buffers
  before every forward.
- Rank 0 alone logs, validates, writes checkpoints and exports. Checkpoints hold the unwrapped model, so a state
  written by any number of processes resumes under any other (the accumulation adapts to keep the global batch).
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.distributed as torch_dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job: rank / world_size / local_rank (torchrun's variables)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group with more than one process is up (collectives are needed)."""
        return self.world_size > 1

    @classmethod
    def from_env(cls, env: Optional[dict[str, str]] = None) -> "DistContext":
        """torchrun's RANK / WORLD_SIZE / LOCAL_RANK; a plain `python` launch is rank 0 of 1."""
        env = dict(os.environ if env is None else env)
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    def device(self, configured: str) -> torch.device:
        """The configured device; with several processes on CUDA, this process's GPU (cuda:LOCAL_RANK)."""
        dev = torch.device(configured)
        if self.enabled and dev.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return dev

    # ---- collectives (no-ops in a single process) ----------------------------------------------------------
    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on at least one (collective stop decisions)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()


def init_distributed(device: str, timeout_min: float = 30.0) -> DistContext:
    """Join torchrun's process group when WORLD_SIZE > 1: NCCL for a CUDA `device`, gloo otherwise. Sets this
    process's GPU. A single process returns rank 0 of 1 and starts nothing."""
    ctx = DistContext.from_env()
    if not ctx.enabled:
        return ctx
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(ctx.local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if cuda else "gloo",
                                      timeout=datetime.timedelta(minutes=timeout_min))
    log.info("process %d of %d (%s)", ctx.rank, ctx.world_size, torch_dist.get_backend())
    return ctx


def shutdown_distributed() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def plan_micro_batches(batch_size: int, micro_batch_size: int, world_size: int) -> tuple[int, int]:
    """(micro-batch size, accumulation steps) with micro x accum x world_size == batch_size (the global batch)."""
    micro = micro_batch_size or batch_size // world_size
    if micro <= 0 or batch_size % (micro * world_size):
        raise ValueError(f"optim.batch_size={batch_size} (the global batch) must be a multiple of "
                         f"optim.micro_batch_size={micro_batch_size or micro} x {world_size} processes; "
                         "set optim.micro_batch_size to a divisor of batch_size / processes")
    return micro, batch_size // (micro * world_size)


def merge_stats(micro_stats: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over micro-batches (in micro-batch order; a key absent from some micro-batches, e.g. the
    prompt terms of a batch without prompts, is averaged over those that have it). One dict is returned as is."""
    if len(micro_stats) == 1:
        return dict(micro_stats[0])
    keys: dict[str, None] = {}
    for s in micro_stats:
        keys.update(dict.fromkeys(s))
    return {k: sum(s[k] for s in micro_stats if k in s) / sum(k in s for s in micro_stats) for k in keys}


class StepModule(nn.Module):
    """What DDP wraps: `forward(batch)` runs the co-training loss on the model. Only the model is a submodule
    (the loss and the text encoder stay outside, so DDP neither broadcasts nor waits for the frozen text tower)."""

    def __init__(self, model: nn.Module, loss: Any) -> None:
        super().__init__()
        self.model = model
        self._loss = [loss]  # a list: not registered as a submodule

    def forward(self, batch: Any) -> Any:
        return self._loss[0](self.model, batch)


def wrap_ddp(model: nn.Module, loss: Any, ctx: DistContext, device: torch.device) -> nn.Module:
    """A DDP-wrapped StepModule. find_unused_parameters: batches without valid prompts or phrases leave some
    head parameters out of the graph, and DDP must still reduce their (zero) gradients."""
    step = StepModule(model, loss)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=ids, find_unused_parameters=True)


def sync_context(ddp: Optional[nn.Module], last: bool) -> contextlib.AbstractContextManager:
    """Gradient accumulation: skip DDP's all-reduce for every micro-batch but the last of a step."""
    if ddp is None or last:
        return contextlib.nullcontext()
    return ddp.no_sync()  # type: ignore[operator]


def micro_indices(it: int, ctx: DistContext, accum: int) -> Iterator[int]:
    """Data steps k = it*M + rank*accum + a (a = 0..accum-1) this process runs in iteration `it`."""
    m_total = ctx.world_size * accum
    for a in range(accum):
        yield it * m_total + ctx.rank * accum + a


__all__ = ["DistContext", "init_distributed", "shutdown_distributed", "plan_micro_batches", "merge_stats",
           "StepModule", "wrap_ddp", "sync_context", "micro_indices"]
