"""One thing track's state and its motion model (constant box-centre velocity), used by `Tracker`.

Coordinates: boxes xyxy in image pixels; velocities px/frame (x, y); masks live on the tracker's IoU grid
(`GridSampler`: bit-packed uint64 rows for IoU, the unpacked bool grid for shifting).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .similarity import GridSampler, packed_iou

TENTATIVE = "tentative"
CONFIRMED = "confirmed"


@dataclass
class Track:
    """State of one thing track. Masks are kept on the tracker's IoU grid, embeddings L2-normalised."""

    uid: int                       # internal serial (tentative tracks have no public id yet)
    track_id: int                  # public id, 0 while tentative
    state: str                     # TENTATIVE | CONFIRMED
    class_id: int                  # majority vote over the matched segments' classes (see class_votes)
    class_name: str
    grid_mask: np.ndarray          # uint64 [W64], bit-packed mask samples on the IoU grid (GridSampler)
    grid_count: int                # number of grid samples inside the mask
    grid_bool: np.ndarray          # bool [gh, gw], the same samples unpacked (shifted for motion prediction)
    box: np.ndarray                # float32 [4] xyxy, last seen
    embedding: Optional[np.ndarray]  # float32 [D] or None
    hits: int                      # number of frames matched
    first_frame: int
    last_frame: int                # frame index of the last match
    score: float                   # last segment score
    class_votes: dict = field(default_factory=dict)  # class id -> (count, name) of matched segments
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # box centre px/frame (x, y)

    def age(self, frame: int) -> int:
        """Frames since the last match (0 = matched this frame)."""
        return frame - self.last_frame


def track_iou(tracks: Sequence[Track], sampler: GridSampler, grids: np.ndarray, counts: np.ndarray,
              boxes: np.ndarray, frame: int, motion_horizon: int) -> np.ndarray:
    """Mask IoU [T, N] of `tracks` vs N detections (packed grids [N, W64], counts [N], boxes [N, 4] xyxy): the
    larger of the IoU with the track's last mask and with that mask moved by constant velocity over
    min(age, motion_horizon) frames. The moved mask keeps sliding objects and camera motion overlapping; the max
    keeps a wrong velocity (a box-centre jump when one frame's mask caught a stray fragment) from pushing a track
    off an object that stayed put. `motion_horizon` <= 0 compares with the last masks only."""
    t_grid = np.stack([t.grid_mask for t in tracks])
    t_count = np.array([t.grid_count for t in tracks], np.int64)
    t_box = np.stack([t.box for t in tracks]).astype(np.float32)
    iou = packed_iou(t_grid, t_count, t_box, grids, counts, boxes)
    if motion_horizon <= 0:
        return iou
    steps = np.minimum([t.age(frame) for t in tracks], motion_horizon).astype(np.float32)
    move = np.stack([t.velocity for t in tracks]) * steps[:, None]        # px (x, y)
    cells = np.round(move / sampler.stride).astype(np.int64)
    moving = np.flatnonzero(cells.any(1))
    if moving.size:
        shifted = sampler.shifted(np.stack([tracks[i].grid_bool for i in moving]), cells[moving])
        m_grid, m_count = GridSampler.pack(shifted)
        m_box = t_box[moving] + np.concatenate([move[moving], move[moving]], 1)
        iou[moving] = np.maximum(iou[moving], packed_iou(m_grid, m_count, m_box, grids, counts, boxes))
    return iou


def update_velocities(tracks: Sequence[Track], new_boxes: np.ndarray, frame: int) -> None:
    """Set the box-centre velocity (px/frame) of matched `tracks` from their matched boxes [M, 4] xyxy, batched.
    Call before the tracks' boxes and `last_frame` change. The first displacement initialises the velocity;
    later ones are smoothed (box centres jitter)."""
    if not tracks:
        return
    old = np.stack([t.box for t in tracks])
    dt = np.maximum([frame - t.last_frame for t in tracks], 1)[:, None]
    obs = ((new_boxes[:, :2] + new_boxes[:, 2:]) - (old[:, :2] + old[:, 2:])) / (2.0 * dt)
    prev = np.stack([t.velocity for t in tracks])
    first = np.array([t.hits == 1 for t in tracks])[:, None]
    vel = np.where(first, obs, 0.5 * prev + 0.5 * obs).astype(np.float32)
    for t, v in zip(tracks, vel):
        t.velocity = v
