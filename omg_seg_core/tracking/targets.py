"""Persistent targets: prompt / text results registered with `track=true`, re-found in every later frame.

A target keeps its query embedding(s), last mask and box. Each frame it is re-found from two candidates:

* PROMPT: a box prompt (the last box grown by `target_box_expand` per side) run on the predictor's cached
  image features (`predictor.prompt(boxes=...)`, all targets in one call) — SAM-style re-segmentation; skipped
  for a target whose frame candidate carries its linked tracker id (`target_prompt_every_frame` false, default);
* FRAME: the best-matching segment of the frame's own (tracked) segments, by the same similarity the tracker
  uses (embedding cosine, IoU with the last mask, class) plus a bonus when the segment carries the tracker id
  the target was linked to.

The candidate with the higher similarity wins if it reaches `target_min_similarity`; frame segments are
shared out between targets with the Hungarian algorithm so two targets never take the same segment.

Embeddings live in two spaces: prompt queries and the model's learned (panoptic) queries come from the same
decoder but are not guaranteed to sit in the same region of feature space, so a target keeps one embedding
per space (`prompt_embedding`, `query_embedding`) and compares each candidate with the one of its space.

States: "tracking" (found this frame), "occluded" (not found, for at most `target_max_lost_s` seconds by
stamps, or `target_max_lost_frames` frames without stamps), "lost" (longer). Lost targets are NOT dropped:
they stay in every output with an empty mask and are listed in `extra["lost_ids"]` until `remove()`/`clear()`;
a lost target is re-acquired when a frame segment's embedding cosine reaches `target_reacquire_threshold` or
its linked tracker id reappears (the tracker re-identified it).

Output of `update()`: a `Segments` (task "targets") with ONE ROW PER REGISTERED TARGET in registration order;
`track_ids` = target ids (stable, never reused); rows not found this frame have an empty mask, zero box and
score 0. `extra["target_states"]` (per row), `extra["lost_ids"]`, `extra["target_events"]` (transitions).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..structures import Segments
from .config import TrackerConfig
from .protocols import Resegmenter
from .similarity import GridSampler, cosine, grown_boxes, normalize_rows, packed_iou

log = logging.getLogger(__name__)

TRACKING, OCCLUDED, LOST = "tracking", "occluded", "lost"
#: Added to a frame candidate's similarity when it carries the tracker id the target is linked to: the
#: tracker has already accumulated evidence (embedding history, re-id) that this is the same object.
TRACK_LINK_BONUS = 0.25
#: Minimum IoU to link a target to a tracked frame segment (at registration or after a prompt re-find).
LINK_IOU = 0.5


@dataclass
class Target:
    """One persistent target. Masks full resolution (output) + on the IoU grid (matching)."""

    target_id: int
    label: str                               # text query, or "prompt"
    class_id: int
    class_name: str
    is_thing: bool
    mask: np.ndarray                         # bool [H, W], last found mask
    grid_mask: np.ndarray                    # uint64 [W64], packed grid samples (GridSampler); [0] = unknown
    grid_count: int                          # grid samples inside the mask
    box: np.ndarray                          # float32 [4]
    prompt_embedding: Optional[np.ndarray]   # float32 [D], prompt-query space
    query_embedding: Optional[np.ndarray]    # float32 [D], learned-query space
    linked_track_id: int                     # tracker id of the frame segment it was last seen as (0 = none)
    state: str
    last_seen_frame: int                     # index of the frame it was last found in (registration: the
                                             # last frame processed, as requests refer to the current image)
    last_seen_stamp: Optional[float]
    score: float


class TargetManager:
    """Registers targets and re-finds them each frame (see module docstring)."""

    def __init__(self, config: Optional[TrackerConfig] = None) -> None:
        self._config = config if config is not None else TrackerConfig()
        self._config.validate()
        self._targets: list[Target] = []
        self._next_id = 1
        self._frame = -1
        self._stamp: Optional[float] = None
        self._size: Optional[tuple[int, int]] = None
        self._sampler: Optional[GridSampler] = None

    # ------------------------------------------------------------------------------------------ public
    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, cfg: TrackerConfig) -> None:
        """Change settings between frames; a new `iou_grid` re-samples the targets' stored masks."""
        if not isinstance(cfg, TrackerConfig):
            raise TypeError(f"TargetManager.config must be a TrackerConfig, got {type(cfg).__name__}")
        cfg.validate()
        old, self._config = self._config, cfg
        if cfg.iou_grid != old.iou_grid and self._size is not None:
            self._sampler = GridSampler(self._size, cfg.iou_grid)
            for t in self._targets:
                if t.mask.shape == self._size:
                    packed, counts = self._grid(t.mask[None], t.box[None])
                    t.grid_mask, t.grid_count = packed[0], int(counts[0])

    @property
    def targets(self) -> list[Target]:
        return list(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def register(self, segments: Segments, index: int = 0, label: str = "",
                 frame_segments: Optional[Segments] = None, stamp: Optional[float] = None) -> int:
        """Register row `index` of a prompt/text result as a target; returns its id (>= 1).

        `frame_segments`: the same frame's tracked segments, if available; the target is linked to the one
        overlapping it most (IoU >= 0.5) so its learned-query embedding and tracker id help re-finding it.
        """
        if not isinstance(segments, Segments):
            raise TypeError(f"TargetManager.register expects Segments, got {type(segments).__name__}")
        if not 0 <= index < len(segments):
            raise ValueError(f"TargetManager.register: index {index} out of range for {len(segments)} segments")
        mask = segments.masks[index]
        if not mask.any():
            raise ValueError("TargetManager.register: the segment's mask is empty; nothing to track")
        self._check_size(segments.image_size)
        emb = None if segments.embeddings is None else normalize_rows(segments.embeddings[index:index + 1])[0]
        packed, counts = self._grid(mask[None], segments.boxes[index:index + 1])
        from_prompt = segments.task == "prompt"
        t = Target(
            target_id=self._next_id, label=label or segments.task or "target",
            class_id=int(segments.class_ids[index]), class_name=segments.class_names[index],
            is_thing=bool(segments.is_thing[index]), mask=mask.copy(),
            grid_mask=packed[0], grid_count=int(counts[0]), box=segments.boxes[index].copy(),
            prompt_embedding=emb if from_prompt else None, query_embedding=None if from_prompt else emb,
            linked_track_id=int(segments.track_ids[index]), state=TRACKING,
            last_seen_frame=self._frame, last_seen_stamp=stamp, score=float(segments.scores[index]))
        if frame_segments is not None and len(frame_segments):
            self._link(t, frame_segments)
        self._next_id += 1
        self._targets.append(t)
        return t.target_id

    def remove(self, target_id: int) -> bool:
        """Forget a target; returns False when no target has that id."""
        n = len(self._targets)
        self._targets = [t for t in self._targets if t.target_id != int(target_id)]
        return len(self._targets) < n

    def clear(self) -> int:
        """Forget every target; returns how many there were. Ids keep counting (never reused)."""
        n = len(self._targets)
        self._targets = []
        return n

    def update(self, frame_segments: Optional[Segments], predictor: Optional[Resegmenter] = None,
               frame_index: Optional[int] = None, stamp: Optional[float] = None,
               image_size: Optional[tuple[int, int]] = None) -> Segments:
        """Re-find every target in this frame; returns one row per target (see module docstring).

        Args:
            frame_segments: this frame's segments after `Tracker.update` (track ids used for linking), or None.
            predictor: a `Resegmenter` (protocols.py; e.g. an OMGSegPredictor) holding THIS frame (box prompts run on
                its cached features), or None to match against `frame_segments` only.
            frame_index, stamp: as for `Tracker.update` (stamp in seconds drives `target_max_lost_s`).
            image_size: (H, W); taken from `frame_segments` when None.
        """
        if frame_segments is None and image_size is None:
            raise ValueError("TargetManager.update: give frame_segments or image_size")
        size = tuple(int(v) for v in (image_size if image_size is not None else frame_segments.image_size))
        events: list[str] = []
        if self._size is not None and size != self._size:
            events.append(f"image size changed from {self._size} to {size}: all targets marked lost")
            for t in self._targets:
                t.state = LOST
                t.mask = np.zeros(size, bool)
                t.grid_mask, t.grid_count = np.zeros(0, np.uint64), 0
        self._check_size(size, force=True)
        if stamp is not None and self._stamp is not None and stamp < self._stamp:
            events.append(f"time jumped backwards ({self._stamp:.3f} -> {stamp:.3f} s): target clocks restarted")
            for t in self._targets:
                t.last_seen_stamp = stamp
        self._frame = int(frame_index) if frame_index is not None else self._frame + 1
        self._stamp = stamp if stamp is not None else self._stamp
        frame = self._frame
        if frame_segments is None:
            frame_segments = Segments.empty(size)

        found: dict[int, tuple[float, np.ndarray, np.ndarray, Optional[np.ndarray], str, int]] = {}
        self._frame_candidates(frame_segments, found)
        active = [i for i, t in enumerate(self._targets) if t.state != LOST]
        if not self.config.target_prompt_every_frame:  # the tracker's match of the linked track already answers
            active = [i for i in active if not (i in found and self._targets[i].linked_track_id > 0
                                               and found[i][5] == self._targets[i].linked_track_id)]
        if predictor is not None and self.config.target_use_prompt and active:
            self._prompt_candidates(predictor, active, size, found)

        for i, t in enumerate(self._targets):
            if i in found:
                sim, mask, box, emb, space, track_id = found[i]
                if t.state == LOST:
                    events.append(f"target {t.target_id} re-acquired")
                self._accept(t, sim, mask, box, emb, space, track_id, frame_segments, frame, stamp)
            else:
                unseen_f = frame - t.last_seen_frame
                unseen_s = None if stamp is None or t.last_seen_stamp is None else stamp - t.last_seen_stamp
                too_long = (unseen_s > self.config.target_max_lost_s) if unseen_s is not None else \
                    unseen_f > self.config.target_max_lost_frames
                if t.state != LOST and too_long:
                    events.append(f"target {t.target_id} ({t.label}) lost")
                    t.state = LOST
                elif t.state == TRACKING:
                    t.state = OCCLUDED
        for e in events:
            log.warning("targets: %s", e)
        return self._output(size, found, events, frame_segments)

    # ------------------------------------------------------------------------------------------ internals
    def _check_size(self, size: tuple[int, int], force: bool = False) -> None:
        if self._size is None or force:
            self._size = tuple(size)
            self._sampler = GridSampler(self._size, self.config.iou_grid)
        elif tuple(size) != self._size:
            raise ValueError(f"TargetManager: segments are {size} but frames are {self._size}")

    def _grid(self, masks: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._sampler.sample(masks, boxes)

    def _similarity(self, t: Target, grid: tuple[np.ndarray, np.ndarray], box: np.ndarray,
                    emb: Optional[np.ndarray], space: str, class_id: Optional[int]) -> np.ndarray:
        """Similarity [M] of target t with M candidates (grid = packed [M, W64] + counts [M], box [M, 4],
        emb [M, D] or None)."""
        cfg = self.config
        packed, counts = grid
        num = np.zeros(packed.shape[0], np.float32)
        den = 0.0
        if t.grid_mask.size == packed.shape[1]:  # no IoU term after a resolution change
            num += cfg.w_iou * packed_iou(t.grid_mask[None], np.array([t.grid_count]), t.box[None], packed, counts,
                                          box)[0]
            den += cfg.w_iou
        own = t.prompt_embedding if space == "prompt" else t.query_embedding
        ref = own if own is not None else (t.query_embedding if space == "prompt" else t.prompt_embedding)
        if emb is not None and ref is not None and cfg.w_embedding > 0:
            num += cfg.w_embedding * np.clip(cosine(ref[None], emb)[0], 0.0, 1.0)
            den += cfg.w_embedding
        if class_id is not None and t.class_id >= 0 and cfg.w_class > 0:
            num += cfg.w_class * (class_id == t.class_id)
            den += cfg.w_class
        return num / den if den > 0 else num

    def _prompt_candidates(self, predictor: Resegmenter, active: list[int], size: tuple[int, int],
                           found: dict) -> None:
        boxes = grown_boxes(np.stack([self._targets[i].box for i in active]), self.config.target_box_expand, size)
        res = predictor.prompt(boxes=boxes)
        if len(res) != len(active):
            raise RuntimeError(f"predictor.prompt returned {len(res)} results for {len(active)} boxes")
        packed, counts = self._grid(res.masks, res.boxes)
        emb = None if res.embeddings is None else normalize_rows(res.embeddings)
        for k, i in enumerate(active):
            if not res.masks[k].any():
                continue
            t = self._targets[i]
            sim = float(self._similarity(t, (packed[k:k + 1], counts[k:k + 1]), res.boxes[k:k + 1],
                                         None if emb is None else emb[k:k + 1], "prompt", None)[0])
            # the prompt wins ties with a frame candidate (as when it was looked at first)
            if sim >= self.config.target_min_similarity and (i not in found or sim >= found[i][0]):
                found[i] = (sim, res.masks[k], res.boxes[k], None if emb is None else emb[k], "prompt", 0)

    def _frame_candidates(self, seg: Segments, found: dict) -> None:
        """Hungarian over targets x frame segments (before the prompts, which replace a frame match only when at
        least as similar)."""
        if not self._targets or len(seg) == 0:
            return
        cfg = self.config
        grid = self._grid(seg.masks, seg.boxes)
        emb = None if seg.embeddings is None else normalize_rows(seg.embeddings)
        sim = np.zeros((len(self._targets), len(seg)), np.float32)
        ok = np.zeros_like(sim, bool)
        for i, t in enumerate(self._targets):
            linked = (seg.track_ids == t.linked_track_id) & (t.linked_track_id > 0)
            if t.state == LOST:
                # Stale position: only identity evidence counts (embedding or the tracker's re-id).
                e = np.zeros(len(seg), np.float32)
                ref = t.query_embedding if t.query_embedding is not None else t.prompt_embedding
                if emb is not None and ref is not None:
                    e = cosine(ref[None], emb)[0]
                sim[i] = np.where(linked, 1.0, e)
                ok[i] = linked | (e >= cfg.target_reacquire_threshold)
            else:
                s = self._similarity(t, grid, seg.boxes, emb, "query", None)
                sim[i] = np.minimum(s + TRACK_LINK_BONUS * linked, 1.0)
                # The tracker's id is evidence on its own (it already weighed embeddings and overlap).
                ok[i] = linked | (sim[i] >= cfg.target_min_similarity)
            if cfg.class_gating and t.class_id >= 0:
                ok[i] &= seg.class_ids == t.class_id
        if not ok.any():
            return
        rows, cols = linear_sum_assignment(np.where(ok, 1.0 - sim, 1e6))
        for r, c in zip(rows, cols):
            if ok[r, c] and (r not in found or sim[r, c] > found[r][0]):
                found[r] = (float(sim[r, c]), seg.masks[c], seg.boxes[c], None if emb is None else emb[c],
                            "query", int(seg.track_ids[c]))

    def _accept(self, t: Target, sim: float, mask: np.ndarray, box: np.ndarray, emb: Optional[np.ndarray],
                space: str, track_id: int, frame_segments: Segments, frame: int, stamp: Optional[float]) -> None:
        t.mask, t.box, t.score = mask.copy(), np.asarray(box, np.float32).copy(), sim
        packed, counts = self._grid(mask[None], t.box[None])
        t.grid_mask, t.grid_count = packed[0], int(counts[0])
        if emb is not None:
            attr = "prompt_embedding" if space == "prompt" else "query_embedding"
            old = getattr(t, attr)
            m = self.config.embedding_momentum
            new = emb if old is None else m * old + (1 - m) * emb
            setattr(t, attr, new / max(float(np.linalg.norm(new)), 1e-12))
        if space == "query":
            if track_id > 0:
                t.linked_track_id = track_id
        elif len(frame_segments):
            self._link(t, frame_segments)
        t.state, t.last_seen_frame, t.last_seen_stamp = TRACKING, frame, stamp

    def _link(self, t: Target, seg: Segments) -> None:
        """Link t to the frame segment overlapping its mask most (IoU >= LINK_IOU): tracker id + query emb."""
        packed, counts = self._grid(seg.masks, seg.boxes)
        iou = packed_iou(t.grid_mask[None], np.array([t.grid_count]), t.box[None], packed, counts, seg.boxes)[0]
        k = int(np.argmax(iou))
        if iou[k] < LINK_IOU:
            return
        if seg.track_ids[k] > 0:
            t.linked_track_id = int(seg.track_ids[k])
        if seg.embeddings is not None and t.query_embedding is None:
            t.query_embedding = normalize_rows(seg.embeddings[k:k + 1])[0]

    def _output(self, size: tuple[int, int], found: dict, events: list[str], frame_segments: Segments) -> Segments:
        n = len(self._targets)
        masks = np.zeros((n, *size), bool)
        boxes = np.zeros((n, 4), np.float32)
        scores = np.zeros(n, np.float32)
        for i, t in enumerate(self._targets):
            if i in found:
                masks[i], boxes[i], scores[i] = t.mask, t.box, t.score
        dims = {len(e) for t in self._targets for e in (t.query_embedding, t.prompt_embedding) if e is not None}
        emb = None
        if len(dims) == 1:
            d = dims.pop()
            emb = np.stack([t.query_embedding if t.query_embedding is not None else
                            t.prompt_embedding if t.prompt_embedding is not None else np.zeros(d, np.float32)
                            for t in self._targets]) if n else np.zeros((0, d), np.float32)
        out = Segments(masks, scores, [t.class_id for t in self._targets], [t.class_name for t in self._targets],
                       [t.is_thing for t in self._targets], boxes=boxes,
                       track_ids=[t.target_id for t in self._targets], embeddings=emb, task="targets")
        out.extra["target_states"] = [t.state for t in self._targets]
        out.extra["target_labels"] = [t.label for t in self._targets]
        out.extra["lost_ids"] = [t.target_id for t in self._targets if t.state == LOST]
        out.extra["target_events"] = events
        return out


__all__ = ["TargetManager", "Target", "TRACKING", "OCCLUDED", "LOST"]
