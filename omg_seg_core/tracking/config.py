"""Tracker and target-manager settings: one flat dataclass whose field names are the ROS parameter names.

Only scalars and flat lists are used so every field maps onto a ROS 2 parameter type (double, int, bool,
string, string[] and double[]); per-class overrides are therefore two parallel lists (names, values).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass
class TrackerConfig:
    """Settings of `Tracker` (association + life cycle) and `TargetManager` (persistent targets).

    Association similarity of a track and a segment (all terms in [0, 1], higher = more alike)::

        S = (w_embedding * max(cos(track_emb, seg_emb), 0) + w_iou * maskIoU(track_last_mask, seg_mask)
             + w_class * [class agrees]) / (sum of the weights of the terms that are available)

    A pair can be matched only when S >= the gate of the track's class (`match_threshold` unless the class
    is listed in `gate_class_names`) and, with `class_gating`, the classes agree.
    """

    # --- association cost -------------------------------------------------------------------------------
    w_embedding: float = 0.5            # weight of the query-embedding cosine similarity (MinVIS cue)
    w_iou: float = 0.4                  # weight of mask IoU with the track's last mask
    w_class: float = 0.1                # weight of class agreement (only matters when class_gating is off)
    match_threshold: float = 0.45       # minimum S for a match (global gate)
    gate_class_names: list[str] = field(default_factory=list)     # per-class gate overrides: class names ...
    gate_class_thresholds: list[float] = field(default_factory=list)  # ... and their minimum S
    class_gating: bool = False          # True: forbid matching across classes. Off by default: panoptic
                                        # models flicker between similar classes, which would split tracks
    tentative_penalty: float = 0.2      # association cost added to tentative tracks: confirmed ones win near-ties
    embedding_momentum: float = 0.5     # track embedding = m * old + (1 - m) * new (then re-normalised)
    iou_grid: int = 64                  # masks are compared on a grid whose long side has this many cells
    motion_horizon: int = 3             # IoU also tries the last mask moved by the track's velocity for up to this
                                        # many frames of absence (0 = no motion prediction)
    min_score: float = 0.0              # segments scoring below this are not tracked (track id 0)
    # --- life cycle (frames) ----------------------------------------------------------------------------
    n_init: int = 2                     # hits before a tentative track is confirmed and gets an id
    tentative_max_age: int = 1          # frames a tentative track may go unmatched before it is dropped
    max_age: int = 15                   # frames a confirmed track survives unseen (occlusion) before removal
    reid_max_age: int = 300             # frames a removed track stays in the re-identification memory
    reid_memory_size: int = 100         # most tracks kept in that memory (oldest dropped first)
    reid_threshold: float = 0.75        # minimum embedding cosine to revive a remembered track
    # --- re-finding missed objects (recovery.py; needs the predictor of the same frame) -----------------------
    recover_max_gap: int = 3            # confirmed tracks unseen for 1..this many frames are looked for with a box
                                        # prompt at their last box (0 = off)
    recover_box_expand: float = 0.1     # ... that box moved by the track's velocity, grown by this per side
    recover_min_iou: float = 0.3        # accept the prompt's mask when its IoU with the track's last mask >= this
    recover_max_overlap: float = 0.3    # ... and its IoU with each thing segment of the frame < this
    recover_min_score: float = 0.2      # first tried: the frame's instance results scoring >= this (> 1 = skip)
    # --- ids ----------------------------------------------------------------------------------------------
    stuff_id_offset: int = 50000        # stuff segment id = stuff_id_offset + class_id; thing ids wrap below
    # --- resets -------------------------------------------------------------------------------------------
    reset_on_time_gap_s: float = 0.0    # reset when stamps jump forward more than this (0 = never)
    # --- persistent targets (TargetManager) ---------------------------------------------------------------
    target_max_lost_s: float = 3.0      # a target unseen for longer (by stamps) is reported as lost
    target_max_lost_frames: int = 90    # the same in frames, used when no stamps are given
    target_min_similarity: float = 0.5  # minimum candidate similarity to accept a re-found target
    target_box_expand: float = 0.25     # the prompt box is the last box grown by this fraction per side
    target_use_prompt: bool = True      # also re-find targets with a box prompt on the cached features
    target_prompt_every_frame: bool = False  # ... even when the frame's segment carrying the target's linked track
                                        # id already answers it (False: skip that prompt, the tracker's match wins)
    target_reacquire_threshold: float = 0.8  # embedding cosine needed to re-acquire a target marked lost

    def __post_init__(self) -> None:
        self.gate_class_names = [str(n) for n in self.gate_class_names]
        self.gate_class_thresholds = [float(t) for t in self.gate_class_thresholds]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name, v in self.to_dict().items():  # NaN passes `< 0` checks and inf breaks int(): refuse them first
            numbers = [x for x in (v if isinstance(v, list) else [v])
                       if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if any(not math.isfinite(x) for x in numbers):
                raise ValueError(f"TrackerConfig.{name} must be finite, got {v!r}")
        for name in ("w_embedding", "w_iou", "w_class", "min_score"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrackerConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.w_embedding + self.w_iou + self.w_class <= 0:
            raise ValueError("TrackerConfig: at least one of w_embedding, w_iou, w_class must be > 0")
        if len(self.gate_class_names) != len(self.gate_class_thresholds):
            raise ValueError(
                f"TrackerConfig.gate_class_names ({len(self.gate_class_names)}) and gate_class_thresholds "
                f"({len(self.gate_class_thresholds)}) must have the same length")
        for name in ("match_threshold", "embedding_momentum", "reid_threshold", "target_min_similarity",
                     "target_reacquire_threshold", "recover_min_iou", "recover_max_overlap"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"TrackerConfig.{name} must be in [0, 1], got {v}")
        for name, lo in (("n_init", 1), ("tentative_max_age", 0), ("max_age", 0), ("reid_max_age", 0), ("reid_memory_size", 0),
                         ("iou_grid", 4), ("motion_horizon", 0), ("stuff_id_offset", 2), ("target_max_lost_frames", 0),
                         ("recover_max_gap", 0)):
            v = getattr(self, name)
            if int(v) != v or v < lo:
                raise ValueError(f"TrackerConfig.{name} must be an integer >= {lo}, got {v}")
        for name in ("reset_on_time_gap_s", "target_max_lost_s", "target_box_expand", "tentative_penalty",
                     "recover_box_expand", "recover_min_score"):
            if not getattr(self, name) >= 0:  # nan fails too
                raise ValueError(f"TrackerConfig.{name} must be >= 0, got {getattr(self, name)}")

    def gate_for(self, class_name: str) -> float:
        """The minimum similarity for a track of `class_name`."""
        if not self.gate_class_names:  # the common case, called per track per frame
            return self.match_threshold
        for n, t in zip(self.gate_class_names, self.gate_class_thresholds):
            if n == class_name:
                return t
        return self.match_threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrackerConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrackerConfig: unknown field(s) {sorted(unknown)}")
        return cls(**d)

    def updated(self, **kw: Any) -> "TrackerConfig":
        """A validated copy with some fields changed (unknown names raise ValueError)."""
        unknown = set(kw) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"TrackerConfig: unknown field(s) {sorted(unknown)}")
        return replace(self, **kw)


__all__ = ["TrackerConfig"]
