"""Model configurations and task thresholds: the one place where these numbers live.

`ModelConfig` describes an architecture (both the released ConvNeXt-L OMG-Seg and the shipped small model are
instances of the same family); `TaskThresholds` holds the post-processing knobs users tune (the node exposes them
as ROS parameters with the same names).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

#: Where the Python packages live: the repository root in a source checkout, site-packages when installed.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    """Folder holding config/, models/ and data/: $OMG_SEG_DATA_DIR, else the source checkout, else the installed
    share/omg_seg_ros (setup.py data_files) of a colcon install (<prefix>/lib/pythonX.Y/site-packages) or of the
    Python environment (sys.prefix)."""
    import os
    import sys

    if os.environ.get("OMG_SEG_DATA_DIR"):
        return Path(os.environ["OMG_SEG_DATA_DIR"])
    if (PACKAGE_ROOT / "config" / "vocabularies").is_dir():
        return PACKAGE_ROOT
    prefixes = ([PACKAGE_ROOT.parents[2]] if len(PACKAGE_ROOT.parents) > 2 else []) + [Path(sys.prefix)]
    for prefix in prefixes:
        share = prefix / "share" / "omg_seg_ros"
        if (share / "config" / "vocabularies").is_dir():
            return share
    return PACKAGE_ROOT


#: config/, models/, data/ (see _data_root).
DATA_ROOT = _data_root()

# ImageNet statistics in 0-255 RGB (OMG-Seg uses these, not CLIP's, although the backbone is a CLIP tower).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters. Field names follow the official config where one exists."""

    name: str
    backbone: str                      # "clip_convnext_large_d_320" | "efficientnet_lite0"
    backbone_channels: tuple[int, int, int, int]  # strides 4, 8, 16, 32
    text_encoder: str                  # "clip_convnext_large_d_320" | "minilm_l6"
    embed_dim: int = 256               # pixel decoder / decoder width
    num_queries: int = 300
    num_decoder_layers: int = 9
    num_heads: int = 8
    decoder_ffn_dim: int = 2048
    num_encoder_layers: int = 6        # deformable pixel-decoder layers
    encoder_ffn_dim: int = 1024
    encoder_num_points: int = 4
    num_feature_levels: int = 3        # memory levels the decoder attends to: strides 32, 16, 8
    num_encoder_levels: int = 3        # of those, how many (coarsest first) the deformable encoder refines;
                                       # the others come from the FPN like stride 4 (mmdet num_encoder_levels)
    class_embed_dim: int = 768         # dimension of text / class embeddings
    logit_scale: float = 4.6052        # exp() of this multiplies the cosine similarity (=100)
    gn_groups: int = 32
    pad_size_divisor: int = 32
    long_side: int = 1024              # default keep-ratio resize of the long image side
    has_clip_head: bool = True         # CLIP image head for region embeddings (open-vocabulary ensemble)
    ensemble_alpha_seen: float = 0.4   # p = q^(1-a) * c^a for classes seen in training
    ensemble_alpha_unseen: float = 0.8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        # Checkpoints written before 2026-12-02 store a "dtype" field that never affected the model (the
        # compute dtype is a load/predictor option): accepted and ignored so they keep loading.
        d = {k: v for k, v in d.items() if k != "dtype"}
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {sorted(unknown)}")
        d["backbone_channels"] = tuple(d["backbone_channels"])
        return cls(**d)


#: The released OMG-Seg model (lxtGH/OMG-Seg `m2_convl_300q`): weights `omg_seg_convl.pth` + open_clip ConvNeXt-L.
CONVL = ModelConfig(
    name="omg_seg_convl",
    backbone="clip_convnext_large_d_320",
    backbone_channels=(192, 384, 768, 1536),
    text_encoder="clip_convnext_large_d_320",
)

#: The shipped small model (trained in this repository on generated scenes, see models/MODEL_CARD.md).
#: Widths/layers are chosen for <= 60 ms set_image+panoptic at 320x240 on 2 CPU cores.
TINY = ModelConfig(
    name="omg_seg_tiny",
    backbone="efficientnet_lite0",
    backbone_channels=(24, 40, 112, 320),
    text_encoder="minilm_l6",
    embed_dim=64,          # 128 made the stride-4 FPN conv + deformable encoder ~35 ms alone at 320x240
    num_queries=32,        # generated scenes hold <= 10 things + 3 stuff segments
    num_decoder_layers=3,
    num_heads=4,
    decoder_ffn_dim=256,
    num_encoder_layers=2,
    encoder_ffn_dim=128,
    encoder_num_points=2,  # 4 until stage 11: the same quality, image graph 0.94x (models/MODEL_CARD.md)
    class_embed_dim=128,   # MiniLM (384-d) -> learned projection -> 128
    gn_groups=8,
    long_side=320,
    has_clip_head=False,
)

MODEL_CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (CONVL, TINY)}
#: Short aliases accepted everywhere a model name is (CLI, node parameter `model`).
MODEL_ALIASES = {"convl": "omg_seg_convl", "tiny": "omg_seg_tiny"}


def get_model_config(name: str) -> ModelConfig:
    key = MODEL_ALIASES.get(name, name)
    if key not in MODEL_CONFIGS:
        raise KeyError(f"unknown model '{name}'; known: {sorted(MODEL_CONFIGS) + sorted(MODEL_ALIASES)}")
    return MODEL_CONFIGS[key]


def _is_number(v: Any) -> bool:
    """An int or float threshold value (bool is an int to Python, but not a number here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: How prompt() answers (TaskThresholds.prompt_source; omg_seg_core/predict/prompt_select.py explains each).
PROMPT_SOURCES = ("auto", "decoder", "queries")


@dataclass
class TaskThresholds:
    """Post-processing knobs. Defaults are the official OMG-Seg test config (object_mask_thr 0.0, iou_thr 0.8,
    filter_low_score True, max_per_image 100), except for prompts: `prompt_source="decoder"`,
    `box_prompt_margin=-1` and `click_connected=False` give the official prompt outputs (prompt_select.py,
    prompt_refine.py); `split_apart_gap=-1` gives the official panoptic / instance segments (split_apart.py); and
    `edge_refine_radius=0` the official mask borders (edge_refine.py)."""

    object_mask_thr: float = 0.0     # panoptic: drop queries whose best class score is <= this
    iou_thr: float = 0.8             # panoptic: keep a segment when argmax area / (sigmoid>=0.5 area) >= this
    filter_low_score: bool = True    # panoptic: official trim of low-score segments
    max_per_image: int = 100         # instances: top-k over queries x classes
    mask_threshold: float = 0.5      # sigmoid threshold for binary masks
    instance_score_thr: float = 0.0  # instances: drop results below this score (0 keeps the official behaviour)
    text_max_results: int = 1        # text(): default number of masks returned
    text_score_thr: float = 0.0      # text(): drop matches below this score
    text_position_rel: float = 0.1   # text() with position words ("the left mug"): candidates are the matches
                                     # ranking >= this x the best one (text/position.py)
    text_confidence_power: float = 8.0  # text(): candidates (query masks cut at their gaps like split_apart) are
                                     # ranked by phrase score x mean mask probability ** this ...
    text_colour_power: float = 4.0   # ... x P(the phrase's colour word | the mask's pixels) ** this (human colour
                                     # naming, text/colour_names.py); both 0: phrase score alone (text/candidates.py)
    text_hint_scale_px: float = 20.0  # text() with a hint point: a candidate whose mask is d px from the point is
                                     # ranked x exp(-d / this); inside = x 1 (predict/text_hint.py)
    like_threshold: float = 0.7      # like(): objects at least this similar to the exemplar are returned (similarity
                                     # in [0, 1], predict/exemplar.py)
    like_max_results: int = 10       # like(): at most this many objects
    prompt_source: str = "auto"      # prompt(): auto | decoder (official) | queries (see prompt_select.py)
    box_prompt_margin: float = 0.1   # prompt(): box prompts keep mask pixels within the box grown by this fraction
                                     # of its width/height per side; < 0 keeps the whole mask (official)
    click_connected: bool = True     # prompt(): a click keeps the connected part of its mask under the click
                                     # (False: the whole mask, official); see prompt_refine.py
    split_apart_gap: float = 0.025   # panoptic()/instances(): a thing mask in >= 2 places this far apart (fraction
                                     # of the image's long side) becomes one segment per place; < 0: off (official)
    split_apart_min_fraction: float = 0.2  # ... a place counts when it holds >= this share of the mask (split_apart.py)
    edge_refine_radius: int = 2      # every task: mask borders snapped to colour edges by a guided filter with this
                                     # window radius in cells of the 1/4-resolution mask grid; 0: off (official)
    edge_refine_eps: float = 1e-4    # ... its regularisation (colour variance, intensities 0..1): smaller follows
                                     # weaker edges (edge_refine.py)

    def __post_init__(self) -> None:
        for f in fields(self):  # NaN passes every range check below, inf most: refuse them first
            v = getattr(self, f.name)
            if _is_number(v) and not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v!r}")
        for name in ("object_mask_thr", "iou_thr", "mask_threshold", "instance_score_thr", "text_score_thr",
                     "like_threshold"):
            v = getattr(self, name)
            if not _is_number(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
        if not 0.0 < self.mask_threshold < 1.0:  # a sigmoid is never 0 or 1: every mask would be empty / full
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold!r}")
        for name in ("max_per_image", "text_max_results", "like_max_results"):
            v = getattr(self, name)
            if not _is_number(v) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        if not isinstance(self.filter_low_score, bool):
            raise ValueError(f"filter_low_score must be true or false, got {self.filter_low_score!r}")
        if self.prompt_source not in PROMPT_SOURCES:
            raise ValueError(f"prompt_source must be one of {list(PROMPT_SOURCES)}, got {self.prompt_source!r}")
        if not _is_number(self.box_prompt_margin):
            raise ValueError(f"box_prompt_margin must be a number (< 0 disables the crop), "
                             f"got {self.box_prompt_margin!r}")
        if not isinstance(self.click_connected, bool):
            raise ValueError(f"click_connected must be true or false, got {self.click_connected!r}")
        for name in ("split_apart_gap", "split_apart_min_fraction"):
            v = getattr(self, name)
            if not _is_number(v) or v != v:
                raise ValueError(f"{name} must be a number, got {v!r}")
        if not _is_number(self.text_position_rel) or not 0.0 <= self.text_position_rel <= 1.0:
            raise ValueError(f"text_position_rel must be a number in [0, 1], got {self.text_position_rel!r}")
        if not _is_number(self.text_hint_scale_px) or not 0.5 <= self.text_hint_scale_px <= 10000:
            raise ValueError(f"text_hint_scale_px must be a number in [0.5, 10000] px, got {self.text_hint_scale_px!r}")
        for name in ("text_confidence_power", "text_colour_power"):
            v = getattr(self, name)
            if not _is_number(v) or not 0.0 <= v <= 16.0:
                raise ValueError(f"{name} must be a number in [0, 16] (0: off), got {v!r}")
        r = self.edge_refine_radius
        if not _is_number(r) or (isinstance(r, float) and not r.is_integer()) or not 0 <= r <= 16:
            raise ValueError(f"edge_refine_radius must be a whole number of mask cells in [0, 16] (0 = off), got {r!r}")
        self.edge_refine_radius = int(r)
        e = self.edge_refine_eps
        if not _is_number(e) or not 0.0 < e < 1.0:
            raise ValueError(f"edge_refine_eps must be a number in (0, 1), got {e!r}")
        if not 0.0 < self.split_apart_min_fraction <= 0.5:
            raise ValueError(f"split_apart_min_fraction must be in (0, 0.5] (two places of a mask must each hold that "
                             f"share), got {self.split_apart_min_fraction!r}")

    def updated(self, **kw: Any) -> "TaskThresholds":
        unknown = set(kw) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"TaskThresholds: unknown threshold(s) {sorted(unknown)}")
        return replace(self, **kw)


def checkpoint_thresholds(meta: dict[str, Any]) -> TaskThresholds:
    """The official TaskThresholds, updated with the values a checkpoint of ours records as tuned for it
    (`meta["meta"]["thresholds"]`, written by `omg-seg-train --export ... --thresholds iou_thr=0.6`). A bad entry is
    a ValueError naming the checkpoint."""
    rec = (meta.get("meta") or {}).get("thresholds") or {}
    try:
        if not isinstance(rec, dict):
            raise ValueError(f"expected a mapping of TaskThresholds names to values, got {type(rec).__name__}")
        return TaskThresholds().updated(**rec)
    except (ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {meta.get('weights')}: meta.thresholds: {e}") from None


def default_vocabulary_path() -> Path:
    """The shipped COCO-panoptic vocabulary (133 classes: 80 things then 53 stuff)."""
    return DATA_ROOT / "config" / "vocabularies" / "coco_panoptic.yaml"


def default_checkpoint_path(name: str = "omg_seg_tiny") -> Optional[Path]:
    p = DATA_ROOT / "models" / f"{name}.pth"
    return p if p.exists() else None


def cache_dir() -> Path:
    """Where text-embedding caches and TensorRT engines go: $OMG_SEG_CACHE or ~/.cache/omg_seg."""
    import os

    return Path(os.environ.get("OMG_SEG_CACHE", Path.home() / ".cache" / "omg_seg"))


__all__ = [
    "ModelConfig", "CONVL", "TINY", "MODEL_CONFIGS", "get_model_config", "TaskThresholds", "PROMPT_SOURCES",
    "IMAGENET_MEAN", "IMAGENET_STD", "PACKAGE_ROOT", "DATA_ROOT", "default_vocabulary_path", "default_checkpoint_path",
    "cache_dir",
]
