"""Online multi-object tracker for `Segments`: Hungarian association on query embeddings + mask IoU + class.

OMG-Seg links video clips MinVIS-style (Hungarian matching on the cosine of decoder query features); a robot
node sees one frame at a time, so this tracker does the same frame to frame and adds what streaming needs:
mask IoU with each track's last mask, class gating, a tentative/confirmed life cycle, survival through short
occlusions and re-identification of recently removed tracks from an embedding memory.

Id conventions (what the node publishes in `instance_ids`, `detections` and `segments`):
- thing segments of a CONFIRMED track carry the track id, 1 <= id < `stuff_id_offset`; ids are handed out on
  confirmation (so false positives that never confirm burn no ids), never reused while the tracker lives
  (also across `reset()`), and wrap around below `stuff_id_offset` after a very long run, skipping live ids;
- thing segments of tentative tracks, and segments scoring below `min_score`, carry 0 (= untracked);
- stuff segments carry the class-based id `stuff_id_offset + class_id`, stable by construction.

Life cycle: a new segment starts a TENTATIVE track; after `n_init` hits it is CONFIRMED.
A tentative track unmatched for more than `tentative_max_age` frames is deleted. A confirmed track that is not matched keeps its last
mask and embedding and can be matched again for `max_age` frames (occlusion); after that it is removed and its
embedding goes to the re-identification memory for `reid_max_age` frames, where an unmatched new segment of
the same class whose embedding cosine is >= `reid_threshold` revives it with its old id.

Resets: a change of image size, a frame index or stamp that goes backwards (bag loop) or, optionally, a
forward time gap larger than `reset_on_time_gap_s` clears all tracks and the memory. Each reset is logged
with `logging.warning` and returned in `Segments.extra["tracker_events"]` / `Tracker.last_events` so the ROS
node can forward it as a ROS warning.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..structures import Segments
from .config import TrackerConfig
from .similarity import GridSampler, cosine, normalize_rows
from .track import CONFIRMED, TENTATIVE, Track, track_iou, update_velocities

log = logging.getLogger(__name__)

#: Cost assigned to forbidden pairs; large but finite so linear_sum_assignment always finds a solution.
_FORBIDDEN = 1e6


@dataclass
class _Memory:
    """A removed confirmed track kept for re-identification."""

    track_id: int
    class_id: int
    class_name: str
    embedding: np.ndarray
    lost_frame: int


class Tracker:
    """Frame-by-frame tracker. Call `update()` once per image with that image's `Segments`.

    Example::

        tracker = Tracker(TrackerConfig(n_init=2, max_age=15))
        for rgb, stamp in frames:
            predictor.set_image(rgb)
            tracked = tracker.update(predictor.panoptic(), stamp=stamp)   # tracked.track_ids filled
    """

    def __init__(self, config: Optional[TrackerConfig] = None) -> None:
        self._config = config if config is not None else TrackerConfig()
        self._config.validate()
        self._next_id = 1
        self._next_uid = 1
        self.last_events: list[str] = []     # events of the latest update()
        self._pending: list[str] = []        # resets not yet reported (reset(), config change, time jumps)
        self.reset(reason=None)

    # ------------------------------------------------------------------------------------------ public
    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, cfg: TrackerConfig) -> None:
        """Change settings between frames (ROS parameter updates). Most take effect at the next update; a new
        `iou_grid` changes the stored masks' layout, so it resets the tracks (with the usual warning event)."""
        if not isinstance(cfg, TrackerConfig):
            raise TypeError(f"Tracker.config must be a TrackerConfig, got {type(cfg).__name__}")
        cfg.validate()
        old, self._config = self._config, cfg
        if cfg.iou_grid != old.iou_grid and self._image_size is not None:
            self.reset(f"iou_grid changed from {old.iou_grid} to {cfg.iou_grid}")

    def reset(self, reason: Optional[str] = "reset requested") -> None:
        """Forget all tracks and the re-id memory. Ids keep counting (they are not reused after a reset)."""
        self._tracks: list[Track] = []
        self._memory: list[_Memory] = []
        self._frame = -1
        self._stamp: Optional[float] = None
        self._image_size: Optional[tuple[int, int]] = None
        self._sampler: Optional[GridSampler] = None
        self._embed_dim: Optional[int] = None
        if reason:
            self._pending.append(f"tracker reset: {reason}")
            log.warning("tracker reset: %s", reason)

    @property
    def tracks(self) -> list[Track]:
        """Live tracks (tentative and confirmed, including occluded ones), as copies."""
        return [replace(t) for t in self._tracks]

    @property
    def confirmed_ids(self) -> list[int]:
        return [t.track_id for t in self._tracks if t.state == CONFIRMED]

    @property
    def memory_ids(self) -> list[int]:
        """Ids of removed tracks that can still be re-identified."""
        return [m.track_id for m in self._memory]

    @property
    def frame_index(self) -> int:
        """Index of the last processed frame (-1 before the first update)."""
        return self._frame

    def update(self, segments: Segments, frame_index: Optional[int] = None, stamp: Optional[float] = None,
               image_size: Optional[tuple[int, int]] = None) -> Segments:
        """Associate `segments` with the tracks and return a copy with `track_ids` filled (see module doc).

        Args:
            segments: this frame's segments (masks [N, H, W]; `embeddings` [N, D] used when present).
            frame_index: the frame's index; consecutive frames differ by 1, a larger step means frames were
                skipped (tracks age by the step). None = previous index + 1.
            stamp: the frame time in seconds (ROS header stamp); used only to detect time jumps.
            image_size: (H, W) of the image; defaults to the masks' size.
        Returns:
            a new `Segments` (the input is not modified) with `track_ids` and
            `extra["tracker_events"]` (list of warning strings, empty when nothing happened).
        """
        if not isinstance(segments, Segments):
            raise TypeError(f"Tracker.update expects Segments, got {type(segments).__name__}")
        size = tuple(int(v) for v in (image_size if image_size is not None else segments.image_size))
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"Tracker.update: bad image_size {image_size}")
        if len(segments) and segments.image_size != size:
            raise ValueError(f"Tracker.update: masks are {segments.image_size} but image_size is {size}")
        frame = self._check_continuity(frame_index, stamp, size)
        cfg = self.config

        out_ids = np.zeros(len(segments), np.int64)
        thing = segments.is_thing.copy()
        # Stuff: class-based ids, no association needed.
        stuff_idx = np.flatnonzero(~thing)
        out_ids[stuff_idx] = cfg.stuff_id_offset + np.maximum(segments.class_ids[stuff_idx], 0)

        det_idx = np.flatnonzero(thing & (segments.scores >= cfg.min_score))
        emb = self._embeddings(segments, det_idx)
        # Sample before selecting rows: fancy-indexing the full masks would copy N x H x W bytes.
        gbool = self._sampler.grid(segments.masks, segments.boxes)[det_idx]
        grids, counts = GridSampler.pack(gbool)
        boxes = segments.boxes[det_idx]
        cls = segments.class_ids[det_idx]
        names = [segments.class_names[i] for i in det_idx]

        matches, unmatched_dets = self._associate(grids, counts, boxes, cls, emb, frame)
        det_track: dict[int, Track] = {}
        self._update_embeddings(matches, emb)
        update_velocities([self._tracks[ti] for ti, _ in matches], boxes[[di for _, di in matches]], frame)
        for ti, di in matches:
            t = self._tracks[ti]
            t.grid_mask, t.grid_count, t.grid_bool, t.box = grids[di], int(counts[di]), gbool[di], boxes[di].copy()
            t.score = float(segments.scores[det_idx[di]])
            self._vote_class(t, int(cls[di]), names[di])
            t.hits += 1
            t.last_frame = frame
            if t.state == TENTATIVE and t.hits >= cfg.n_init:
                self._confirm(t)
            det_track[di] = t
        matched_tracks = {ti for ti, _ in matches}
        # Age out unmatched tracks before creating new ones (their embeddings move to the re-id memory).
        keep: list[Track] = []
        for ti, t in enumerate(self._tracks):
            if ti in matched_tracks:
                keep.append(t)
            elif t.state == TENTATIVE:
                if t.age(frame) <= cfg.tentative_max_age:
                    keep.append(t)  # small objects flicker in and out of the detections
                # else: most likely a false positive
            elif t.age(frame) > cfg.max_age:
                self._remember(t, frame)
            else:
                keep.append(t)
        self._tracks = keep
        self._expire_memory(frame)

        revived = self._reidentify(unmatched_dets, cls, emb)
        for di in unmatched_dets:
            t = Track(uid=self._new_uid(), track_id=0, state=TENTATIVE, class_id=int(cls[di]),
                      class_name=names[di], grid_mask=grids[di], grid_count=int(counts[di]),
                      grid_bool=gbool[di], box=boxes[di].copy(),
                      embedding=None if emb is None else emb[di], hits=1, first_frame=frame, last_frame=frame,
                      score=float(segments.scores[det_idx[di]]))
            mem = revived.get(di)
            if mem is not None:
                t.track_id, t.state, t.hits = mem.track_id, CONFIRMED, cfg.n_init
            elif cfg.n_init <= 1:
                self._confirm(t)
            self._tracks.append(t)
            det_track[di] = t

        for di, t in det_track.items():
            if t.state == CONFIRMED:
                out_ids[det_idx[di]] = t.track_id
        result = replace(segments, track_ids=out_ids, extra=dict(segments.extra))
        result.extra["tracker_events"] = list(self.last_events)
        return result

    # ------------------------------------------------------------------------------------------ internals
    def _check_continuity(self, frame_index: Optional[int], stamp: Optional[float],
                          size: tuple[int, int]) -> int:
        """Detect size changes and time jumps (reset with a warning); return this frame's index."""
        cfg = self.config
        events: list[str] = []
        if self._image_size is not None and size != self._image_size:
            events.append(f"image size changed from {self._image_size} to {size}")
        if stamp is not None and self._stamp is not None:
            if stamp < self._stamp:
                events.append(f"time jumped backwards from {self._stamp:.3f} s to {stamp:.3f} s")
            elif cfg.reset_on_time_gap_s > 0 and stamp - self._stamp > cfg.reset_on_time_gap_s:
                events.append(f"time gap of {stamp - self._stamp:.3f} s > reset_on_time_gap_s")
        if frame_index is not None and self._frame >= 0 and frame_index <= self._frame and \
                self._image_size is not None:
            events.append(f"frame index went back from {self._frame} to {frame_index}")
        if events:
            self.reset("; ".join(events))
        frame = int(frame_index) if frame_index is not None else self._frame + 1
        self._frame = frame
        self._stamp = stamp if stamp is not None else self._stamp
        if self._image_size is None:
            self._image_size = size
            self._sampler = GridSampler(size, cfg.iou_grid)
        # Resets since the last update (requested, config change or just now) are reported with this frame.
        self.last_events, self._pending = self._pending, []
        return frame

    def _embeddings(self, segments: Segments, det_idx: np.ndarray) -> Optional[np.ndarray]:
        # An empty frame says nothing about the embedding width (Segments.empty may carry any).
        if segments.embeddings is None or self.config.w_embedding == 0 or det_idx.size == 0:
            return None
        emb = normalize_rows(segments.embeddings[det_idx])
        if self._embed_dim is None:
            self._embed_dim = emb.shape[1]
        elif emb.shape[1] != self._embed_dim:
            raise ValueError(f"Tracker.update: embedding dimension changed from {self._embed_dim} to "
                             f"{emb.shape[1]} (different model?); call reset() first")
        return emb

    def similarity(self, grids: np.ndarray, counts: np.ndarray, boxes: np.ndarray, cls: np.ndarray,
                   emb: Optional[np.ndarray], frame: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """Similarity S [T, N] of live tracks vs detections and the feasibility mask [T, N] (see config doc)."""
        cfg = self.config
        tracks = self._tracks
        t_cls = np.array([t.class_id for t in tracks], np.int64)
        num = cfg.w_iou * track_iou(tracks, self._sampler, grids, counts, boxes,
                                   self._frame if frame is None else frame, cfg.motion_horizon)
        den = np.full(num.shape, cfg.w_iou, np.float32)
        agree = t_cls[:, None] == cls[None, :]
        num += cfg.w_class * agree
        den += cfg.w_class
        if emb is not None:
            has = np.array([t.embedding is not None for t in tracks])
            if has.any():
                t_emb = np.stack([t.embedding if t.embedding is not None else np.zeros(emb.shape[1], np.float32)
                                  for t in tracks])
                e = np.clip(cosine(t_emb, emb), 0.0, 1.0)
                num += cfg.w_embedding * e * has[:, None]
                den += cfg.w_embedding * has[:, None]
        sim = num / np.maximum(den, 1e-9)
        gates = np.array([cfg.gate_for(t.class_name) for t in tracks], np.float32)
        ok = sim >= gates[:, None]
        if cfg.class_gating:
            ok &= agree
        return sim, ok

    def _associate(self, grids: np.ndarray, counts: np.ndarray, boxes: np.ndarray, cls: np.ndarray,
                   emb: Optional[np.ndarray], frame: int) -> tuple[list[tuple[int, int]], list[int]]:
        """Hungarian matching of live tracks (rows) to detections (cols); returns (track, det) pairs + unmatched."""
        n = grids.shape[0]
        if not self._tracks or n == 0:
            return [], list(range(n))
        sim, ok = self.similarity(grids, counts, boxes, cls, emb, frame)
        # Prefer recently seen tracks on (near) ties: a small penalty per frame of absence.
        ages = np.array([t.age(frame) for t in self._tracks], np.float32)
        # Confirmed tracks first: a tentative track (often a second query on the same object) pays a penalty.
        tent = np.array([t.state == TENTATIVE for t in self._tracks], np.float32)
        cost = np.where(ok, 1.0 - sim + 1e-3 * ages[:, None] + self.config.tentative_penalty * tent[:, None],
                        _FORBIDDEN)
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols) if ok[r, c]]
        matched = {c for _, c in matches}
        return matches, [d for d in range(n) if d not in matched]

    def _update_embeddings(self, matches: list[tuple[int, int]], emb: Optional[np.ndarray]) -> None:
        """EMA of matched tracks' embeddings, batched (one norm for all instead of one per track)."""
        if emb is None or not matches:
            return
        m = self.config.embedding_momentum
        rows = [(self._tracks[ti], di) for ti, di in matches]
        old = np.stack([t.embedding if t.embedding is not None else emb[di] for t, di in rows])
        new = m * old + (1.0 - m) * emb[[di for _, di in rows]]
        new = normalize_rows(new)
        for k, (t, _) in enumerate(rows):
            t.embedding = new[k]

    @staticmethod
    def _vote_class(t: Track, class_id: int, name: str) -> None:
        """Panoptic models flicker between similar classes from frame to frame; a track's class is the one most
        of its segments had (ties: the most recent), so one flipped frame does not change it."""
        if not t.class_votes:
            t.class_votes[t.class_id] = (1, t.class_name)
        count = t.class_votes.get(class_id, (0, name))[0] + 1
        t.class_votes[class_id] = (count, name)
        if count >= t.class_votes[t.class_id][0]:
            t.class_id, t.class_name = class_id, name

    def _confirm(self, t: Track) -> None:
        t.state = CONFIRMED
        t.track_id = self._allocate_id()

    def _allocate_id(self) -> int:
        """Next free thing id in [1, stuff_id_offset); wraps around, skipping ids that are alive."""
        limit = self.config.stuff_id_offset
        used = {t.track_id for t in self._tracks} | {m.track_id for m in self._memory}
        for _ in range(limit):
            tid = self._next_id
            self._next_id = self._next_id + 1 if self._next_id + 1 < limit else 1
            if tid not in used:
                return tid
        raise RuntimeError(f"Tracker: all {limit - 1} thing ids are in use; raise stuff_id_offset")

    def _new_uid(self) -> int:
        self._next_uid += 1
        return self._next_uid - 1

    def _remember(self, t: Track, frame: int) -> None:
        cfg = self.config
        if t.embedding is None or cfg.reid_memory_size == 0 or cfg.reid_max_age == 0:
            return
        self._memory.append(_Memory(t.track_id, t.class_id, t.class_name, t.embedding, frame))
        if len(self._memory) > cfg.reid_memory_size:
            self._memory = self._memory[-cfg.reid_memory_size:]

    def _expire_memory(self, frame: int) -> None:
        self._memory = [m for m in self._memory if frame - m.lost_frame <= self.config.reid_max_age]

    def _reidentify(self, unmatched: list[int], cls: np.ndarray, emb: Optional[np.ndarray]) -> dict[int, _Memory]:
        """Match unmatched detections to remembered tracks by embedding (Hungarian); revived ones leave memory."""
        if emb is None or not self._memory or not unmatched:
            return {}
        cfg = self.config
        m_emb = np.stack([m.embedding for m in self._memory])
        m_cls = np.array([m.class_id for m in self._memory], np.int64)
        sim = cosine(m_emb, emb[unmatched])
        ok = sim >= cfg.reid_threshold
        if cfg.class_gating:
            ok &= m_cls[:, None] == cls[unmatched][None, :]
        if not ok.any():
            return {}
        rows, cols = linear_sum_assignment(np.where(ok, 1.0 - sim, _FORBIDDEN))
        revived = {unmatched[c]: self._memory[r] for r, c in zip(rows, cols) if ok[r, c]}
        gone = {id(m) for m in revived.values()}
        self._memory = [m for m in self._memory if id(m) not in gone]
        return revived


__all__ = ["Tracker", "Track", "TrackerConfig", "TENTATIVE", "CONFIRMED"]
