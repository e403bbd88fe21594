"""Data-parallel training, really spawned: `omg-seg-train` under torchrun with 2 gloo processes against 1 process
accumulating the same two micro-batches (global batch 8 = 2 x 4), and checkpoints of either layout resumed by the
other. Bound: test/tolerances.py (DDP_TWO_PROCESS_REL_UPDATE: the same bits, and why), on the weights' update."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tolerances as tol
from omg_seg_core.train.config import load_train_config
from omg_seg_core.train.distributed import DistContext, merge_stats, micro_indices, plan_micro_batches

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parents[3]
BOUND = tol.DDP_TWO_PROCESS_REL_UPDATE


@pytest.fixture(autouse=True)
def _batched_phrase_cache_afterwards():
    """A Trainer with several micro-batches per step switches the process-wide MiniLM cache to one text per call;
    the other tests of this session get the default back."""
    from omg_seg_core.text.sentence_text import set_one_text_per_call

    yield
    set_one_text_per_call(False)


def _overrides(root: Path, out: Path, iters: int) -> list[str]:
    return [f"data.root={root / 'img'}", f"data.video_root={root / 'vid'}", "data.source=coco_panoptic",
            "data.image_size=[64,64]", "data.val_images=2", "optim.batch_size=8", "optim.micro_batch_size=4",
            f"optim.iters={iters}", "optim.warmup_iters=1", "loss.num_points=64", "loss.prompts_per_image=2",
            "val_every=0", "log_every=1", f"out_dir={out}", "threads=1", "seed=3"]


def _torchrun(overrides: list[str], resume: bool = False) -> None:
    """`torchrun --standalone --nproc_per_node 2 -m omg_seg_core.cli.train` on this checkout's code."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "omg_seg_core.cli.train", "--set", *overrides, *(["--resume"] if resume else [])]
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"


def _state(out: Path) -> dict:
    return torch.load(out / "last.pt", map_location="cpu", weights_only=False)


def _rel_update(weights: dict, ref: dict, init: dict, names: list[str]) -> float:
    """||weights - ref|| / ||ref - init|| over the trained parameters (BatchNorm running statistics follow rank 0
    under DDP and are not parameters)."""
    diff = torch.cat([(weights[k].double() - ref[k].double()).flatten() for k in names])
    moved = torch.cat([(ref[k].double() - init[k].double()).flatten() for k in names])
    assert moved.norm() > 0
    return float(diff.norm() / moved.norm())


def _log(out: Path) -> list[dict]:
    return [x for x in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "total" in x]


def test_micro_batch_plan_keeps_the_global_batch_and_names_the_fields():
    assert plan_micro_batches(8, 0, 1) == (8, 1)
    assert plan_micro_batches(8, 0, 2) == (4, 1)
    assert plan_micro_batches(8, 2, 2) == (2, 2)
    assert plan_micro_batches(16, 1, 8) == (1, 2)
    with pytest.raises(ValueError, match=r"optim.batch_size=4 .*optim.micro_batch_size"):
        plan_micro_batches(4, 0, 3)
    with pytest.raises(ValueError, match=r"optim.batch_size=8"):
        plan_micro_batches(8, 3, 2)
    # the same M = 2 micro-batches, whichever process runs them
    one = list(micro_indices(5, DistContext(0, 1, 0), 2))
    two = [k for r in (0, 1) for k in micro_indices(5, DistContext(r, 2, r), 1)]
    assert one == two == [10, 11]
    assert merge_stats([{"a": 1.0, "p": 4.0}, {"a": 3.0}]) == {"a": 2.0, "p": 4.0}
    assert merge_stats([{"a": 1.5}]) == {"a": 1.5}


def test_two_gloo_processes_match_one_process_and_resume_across_layouts(tiny_data, tmp_path):
    from omg_seg_core.train.trainer import Trainer

    a, r, c, d, r3 = (tmp_path / n for n in ("a", "r", "c", "d", "r3"))
    _torchrun(_overrides(tiny_data, a, 2))
    one = Trainer(load_train_config(None, _overrides(tiny_data, r, 2)))
    assert (one.micro_batch, one.accum) == (4, 2)
    names = [n for n, p in one.model.named_parameters() if p.requires_grad]
    init = {k: v.detach().clone() for k, v in one.model.state_dict().items()}
    one.run()
    st_a, st_r = _state(a), _state(r)
    assert st_a["iter"] == st_r["iter"] == 2
    assert st_a["parallel"] == {"world_size": 2, "micro_batch_size": 4, "accum_steps": 1}
    tol.check("ddp_2proc_vs_1proc_2steps", _rel_update(st_a["model"], st_r["model"], init, names), BOUND)

    # rank 0 alone logs, one line per iteration: the mean over the global batch's micro-batches, in micro-batch
    # order in both layouts, so the same numbers
    log_a, log_r = _log(a), _log(r)
    assert [x["iter"] for x in log_a] == [x["iter"] for x in log_r] == [0, 1]
    for x, y in zip(log_a, log_r):
        assert {k: v for k, v in x.items() if k != "elapsed_s"} == {k: v for k, v in y.items() if k != "elapsed_s"}

    for src, dst in ((r, r3), (a, c), (r, d)):
        shutil.copytree(src, dst)
    Trainer(load_train_config(None, _overrides(tiny_data, r3, 3)), resume=True).run()  # 1 process throughout
    Trainer(load_train_config(None, _overrides(tiny_data, c, 3)), resume=True).run()   # 2-process state, 1 process
    _torchrun(_overrides(tiny_data, d, 3), resume=True)                                 # 1-process state, 2 processes
    ref = _state(r3)["model"]
    for name, out in (("ddp_resume_2proc_state_in_1proc", c), ("ddp_resume_1proc_state_in_2proc", d)):
        st = _state(out)
        assert st["iter"] == 3, name
        assert [x["iter"] for x in _log(out)] == [0, 1, 2], name  # continued, not restarted
        tol.check(name, _rel_update(st["model"], ref, init, names), BOUND)
