"""Training configuration: one dataclass tree, loaded from `config/train_*.yaml`, overridable from the CLI.

Unknown keys are errors naming the file and the key (a typo must not silently fall back to a default).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

import yaml


@dataclass
class DataConfig:
    source: str = "synth"                 # "synth" (generated on the fly) | "coco_panoptic" (a directory)
    root: Optional[str] = None            # coco_panoptic: dataset dir (annotations.json + images/ + panoptic/)
    video_root: Optional[str] = None      # coco_panoptic: video-mode dataset (sequence_id/frame_index) for pairs
    val_root: Optional[str] = None        # coco_panoptic: validation dataset (default: last images of root)
    skip_bad: bool = False                # skip (and count, log) unreadable samples instead of stopping
    split: str = "train"                  # synth split ("train" never shows the held-out colour-shape combos)
    seed: int = 0                         # synth: scene seeds are seed*1e6 + sample index (never reused)
    image_size: tuple[int, int] = (192, 160)  # (W, H) training crop, taken after a random scale in scale_range
    # Random resize factor of each scene before the crop, relative to its rendered size; validation crops use the
    # geometric mean (1.0 for the default). A model run at a smaller long_side than the scenes' (e.g. 256 for
    # 320x240 scenes: factor 0.8) trains around that factor ([0.64, 1.0]) so objects keep their inference size.
    scale_range: tuple[float, float] = (0.8, 1.25)
    video_fraction: float = 0.5           # share of each batch made of frame pairs (video co-training)
    val_seed: int = 1000                  # synth validation split seed (split "val")
    val_images: int = 16
    vocabulary: Optional[str] = None      # vocabulary yaml; default: the world's (synth) or the dataset's

    def __post_init__(self) -> None:
        r = self.scale_range
        if not (isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
                and 0 < r[0] <= r[1]):
            raise ValueError(f"data.scale_range must be [low, high] with 0 < low <= high, got {r!r}")
        self.scale_range = (float(r[0]), float(r[1]))


@dataclass
class OptimConfig:
    lr: float = 4e-4
    backbone_lr_mult: float = 0.1
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    warmup_iters: int = 50
    iters: int = 3000                     # total iterations (cosine decay to 5 % at the end)
    batch_size: int = 8                   # GLOBAL batch of one optimiser step (all processes, all accumulation)
    micro_batch_size: int = 0             # images per process per forward/backward; 0 = batch_size / processes.
                                          # batch_size / (micro x processes) accumulation steps (distributed.py)


@dataclass
class LossConfig:
    num_points: int = 1024
    cls: float = 2.0
    mask: float = 5.0
    dice: float = 5.0
    objectness: float = 1.0
    prompt: float = 1.0
    text: float = 1.0
    track: float = 0.5
    no_object: float = 0.1
    text_scale: float = 20.0              # inverse temperature of the referring contrastive loss
    prompts_per_image: int = 4            # prompt queries sampled from ground truth per image
    click_fraction: float = 0.5           # share of prompts that are single clicks (rest: boxes)
    # Groups of interchangeable attribute words ([[red, green, ...], [small, large]]): every batch phrase with one
    # such word swapped for another of its group ("pink box" for "red box") joins the referring contrastive loss
    # as a negative, so a query must tell the attribute apart, not only the object (losses.attribute_negatives).
    text_negative_words: list = field(default_factory=list)
    # Weight of the feature-distillation term (0 = off; needs init_checkpoint): mean squared difference between the
    # pixel decoder's outputs (mask features and the three memory levels) and those of the teacher (TrainConfig.
    # teacher_checkpoint, else the init_checkpoint model), kept frozen. For a lighter model made with
    # `model_changes`: it learns the features the decoder was trained on instead of relearning the task from the
    # dropped layers' loss.
    distill: float = 0.0

    def __post_init__(self) -> None:
        groups = self.text_negative_words
        if not isinstance(groups, list) or not all(
                isinstance(g, list) and len(g) >= 2 and all(isinstance(w, str) and w and " " not in w for w in g)
                for g in groups):
            raise ValueError("loss.text_negative_words must be a list of word lists (>= 2 single words each), "
                             f"got {groups!r}")


@dataclass
class TrainConfig:
    model: str = "omg_seg_tiny"           # ModelConfig name/alias, or a checkpoint to fine-tune from
    init_checkpoint: Optional[str] = None # start from these weights (ours, or the official omg_seg_convl.pth head)
    # ModelConfig fields to change from the init checkpoint's model (e.g. {num_encoder_layers: 1}): a lighter
    # model that keeps every tensor whose name and shape are unchanged (build_train_model); needs init_checkpoint.
    model_changes: dict = field(default_factory=dict)
    # The frozen teacher of loss.distill when it is not the init_checkpoint model: a later stage of a lighter model
    # starts from its own weights and still learns the features of the model it was cut from. Its
    # pixel decoder must give the student's shapes (embed_dim, feature levels; checked when the model is built).
    teacher_checkpoint: Optional[str] = None
    backbone_weights: Optional[str] = None  # ConvNeXt-L: the open_clip weights file (backbone + CLIP text tower)
    freeze_backbone: bool = False         # ConvNeXt-L fine-tuning: head only (backbone frozen, eval-mode)
    frozen_stages: int = 1                # small model: keep the stem + first block group fixed
    out_dir: str = "runs/omg_seg_tiny"
    seed: int = 0
    device: str = "cpu"
    threads: int = 0                      # torch threads (0 = torch default)
    log_every: int = 10
    val_every: int = 200
    ckpt_every_s: float = 180.0           # write runs/<name>/last.pt at least this often (wall clock)
    max_minutes: float = 0.0              # stop (after checkpointing) after this much wall time; 0 = no limit
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.model_changes, dict):
            raise ValueError(f"model_changes must be a mapping of ModelConfig fields, got {self.model_changes!r}")
        if "name" in self.model_changes:
            raise ValueError("model_changes: 'name' cannot change (the checkpoint stays the model it was made from)")
        for key, what in (("model_changes", bool(self.model_changes)), ("loss.distill", self.loss.distill > 0)):
            if what and not self.init_checkpoint:
                raise ValueError(f"{key} needs init_checkpoint (the model to change / the teacher)")
        if self.loss.distill < 0:
            raise ValueError(f"loss.distill must be >= 0, got {self.loss.distill}")
        if self.teacher_checkpoint and not self.loss.distill > 0:
            raise ValueError("teacher_checkpoint is the loss.distill teacher: set loss.distill > 0 too")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    kw: dict[str, Any] = {}
    for k, v in d.items():
        if k not in known:
            raise ValueError(f"{where}: unknown key '{k}' (known: {sorted(known)})")
        default = getattr(cls(), k)
        if is_dataclass(default):
            kw[k] = _build(type(default), v, f"{where}.{k}")
        elif isinstance(default, tuple):
            kw[k] = tuple(v)
        elif isinstance(default, float) and not isinstance(default, bool):
            try:  # YAML 1.1 reads "1e-3" as a string
                kw[k] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.{k}: expected a number, got {v!r}") from None
        elif isinstance(default, int) and not isinstance(default, bool) and not isinstance(v, int):
            raise ValueError(f"{where}.{k}: expected an integer, got {v!r}")
        else:
            kw[k] = v
    return cls(**kw)


def load_train_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> TrainConfig:
    """Read a YAML file (or defaults when None) and apply `key.sub=value` overrides (values parsed as YAML)."""
    raw: dict[str, Any] = {}
    where = "<defaults>"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training config not found: {p}")
        where = str(p)
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not valid YAML: {e}") from e
    for ov in overrides or []:
        if "=" not in ov:
            raise ValueError(f"override '{ov}' must look like key.sub=value")
        key, val = ov.split("=", 1)
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(val)
    return _build(TrainConfig, raw, where)


__all__ = ["TrainConfig", "DataConfig", "OptimConfig", "LossConfig", "load_train_config"]
