"""Re-finding tracked objects that this frame's segments missed (not official).

A small model misses an object for a frame or two (half hidden, small, merged into a neighbour's mask). The
tracker keeps its track alive (`max_age`), but the frame had no mask or id for it. `recover_missed` looks for
every confirmed track unseen for 1..`recover_max_gap` frames on the predictor's cached features of the same
frame, in two steps:

1. among the frame's lower-scored instance results (`predictor.instances(min_score=recover_min_score)`), which
   the panoptic fusion dropped (ByteTrack's second association, OMG-Seg's queries as the low-score detections):
   matched greedily, best IoU with a track first;
2. for the tracks still missing, ONE batched box prompt: each track's last box moved by its velocity and grown by
   `recover_box_expand` of its size per side.

A mask is accepted for a track when

- its IoU with the track's last mask, or with that mask moved by the track's velocity (the association's
  `track_iou`, on the tracker's IoU grid), is >= `recover_min_iou`: the same place, about the same shape, so
  most likely the same object;
- its IoU with every thing segment of the frame and every mask accepted before it is < `recover_max_overlap`:
  not an object the frame already has.

An accepted mask joins the frame as a thing segment with the track's id, class and embedding and the mask's
score. It yields to the frame's thing segments (their pixels are taken out of it) and takes its pixels from the
stuff segments, so a panoptic result stays a partition. Per-row numpy arrays in `extra` grow with it
(`panoptic_ids`: new thing ids continuing the numbering, as split_apart does; others: zeros), and
`extra["recovered_ids"]` lists the recovered track ids. The tracker's state is not changed: a recovered object is
still "missed" for the life cycle, and the next detection continues its track as before.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import numpy as np

from ..structures import Segments, masks_to_boxes, more_thing_ids
from .protocols import Resegmenter
from .similarity import GridSampler, grown_boxes, packed_iou
from .track import CONFIRMED, track_iou
from .tracker import Tracker

#: Prompt boxes narrower or lower than this (pixels, after clipping to the image) are not tried.
MIN_BOX_SIDE = 2.0


def recover_missed(tracker: Tracker, segments: Segments, predictor: Optional[Resegmenter]) -> Segments:
    """`segments` (the frame's tracked output of `tracker.update`) plus the confirmed tracks it missed, re-found
    on `predictor`'s cached features of the SAME frame: first among its lower-scored instance results, then
    with a box prompt (module docstring).

    Returns a new Segments; when recovery is off (`recover_max_gap` 0), nothing is missing or nothing is found,
    it is `segments` with `extra["recovered_ids"]` = [] (masks and rows shared, not copied).
    """
    cfg = tracker.config
    frame = tracker.frame_index
    missed = [t for t in tracker.tracks
              if t.state == CONFIRMED and 0 < frame - t.last_frame <= cfg.recover_max_gap]
    if not missed or predictor is None:
        return _with_ids(segments, [])
    found = _Found(segments, GridSampler(segments.image_size, cfg.iou_grid), cfg.recover_max_overlap)
    if cfg.recover_min_score <= 1.0:
        missed = _from_instances(missed, found, tracker, predictor)
    if missed:
        _from_prompts(missed, found, tracker, predictor)
    if not found.accepted:
        return _with_ids(segments, [])
    return _append(segments, found.accepted)


class _Found:
    """The frame's thing masks and the masks accepted so far, on the tracker's IoU grid."""

    def __init__(self, segments: Segments, sampler: GridSampler, max_overlap: float) -> None:
        self.sampler, self.max_overlap = sampler, max_overlap
        things = np.flatnonzero(segments.is_thing)
        self.packed, self.counts = sampler.sample(segments.masks[things], segments.boxes[things])
        self.boxes = segments.boxes[things]
        self.taken = segments.masks[things].any(0) if things.size else np.zeros(segments.image_size, bool)
        self.accepted: list[tuple[Any, np.ndarray, float]] = []

    def free(self, packed: np.ndarray, counts: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """bool [N]: masks whose IoU with every frame thing and accepted mask is < max_overlap."""
        if not len(self.counts):
            return np.ones(len(counts), bool)
        return packed_iou(packed, counts, boxes, self.packed, self.counts, self.boxes).max(1) < self.max_overlap

    def accept(self, track: Any, mask: np.ndarray, score: float, packed: np.ndarray, count: int,
               box: np.ndarray) -> bool:
        """Add `mask` (less the pixels already taken) for `track`; False when nothing of it is left."""
        mask = mask & ~self.taken
        if not mask.any():
            return False
        self.taken |= mask
        self.packed = np.concatenate([self.packed.reshape(-1, packed.shape[-1]), packed[None]])
        self.counts = np.append(self.counts, count)
        self.boxes = np.concatenate([self.boxes.reshape(-1, 4), box[None]])
        self.accepted.append((track, mask, score))
        return True


def _from_instances(missed: list, found: _Found, tracker: Tracker, predictor: Resegmenter) -> list:
    """Missed tracks matched (greedy, best motion-aware IoU first) to the frame's instance results scoring >=
    `recover_min_score` that no frame thing covers; returns the tracks still missed."""
    cfg = tracker.config
    cand = predictor.instances(min_score=cfg.recover_min_score, near=_search_boxes(missed, tracker, found))
    if not len(cand):
        return missed
    packed, counts = found.sampler.sample(cand.masks, cand.boxes)
    free = np.flatnonzero(found.free(packed, counts, cand.boxes))
    if not free.size:
        return missed
    iou = track_iou(missed, found.sampler, packed[free], counts[free], cand.boxes[free], tracker.frame_index,
                    cfg.motion_horizon)
    done: set[int] = set()
    for ti, ci in zip(*np.unravel_index(np.argsort(-iou, axis=None, kind="stable"), iou.shape)):
        if iou[ti, ci] < cfg.recover_min_iou:
            break
        k = free[ci]
        if ti in done or not found.free(packed[k:k + 1], counts[k:k + 1], cand.boxes[k:k + 1])[0]:
            continue
        if found.accept(missed[ti], cand.masks[k], float(cand.scores[k]), packed[k], counts[k], cand.boxes[k]):
            done.add(int(ti))
    return [t for i, t in enumerate(missed) if i not in done]


def _predicted_boxes(missed: list, tracker: Tracker, image_size: tuple[int, int]) -> np.ndarray:
    """[T, 4] xyxy: each track's last box moved by its velocity over its gap, grown by recover_box_expand."""
    gap = np.array([tracker.frame_index - t.last_frame for t in missed], np.float32)[:, None]
    boxes = np.stack([t.box for t in missed]).astype(np.float32)
    shift = np.stack([t.velocity for t in missed]).astype(np.float32) * gap
    return grown_boxes(boxes + np.concatenate([shift, shift], 1), tracker.config.recover_box_expand, image_size)


def _search_boxes(missed: list, tracker: Tracker, found: _Found) -> np.ndarray:
    """Where step 1 looks: the predicted boxes and the last boxes (the IoU also tries the unmoved mask)."""
    last = np.stack([t.box for t in missed]).astype(np.float32)
    return np.concatenate([_predicted_boxes(missed, tracker, found.taken.shape), last])


def _from_prompts(missed: list, found: _Found, tracker: Tracker, predictor: Resegmenter) -> list:
    """One batched box prompt at the missed tracks' predicted boxes; returns the tracks still missed."""
    cfg = tracker.config
    boxes = _predicted_boxes(missed, tracker, found.taken.shape)
    usable = (boxes[:, 2] - boxes[:, 0] >= MIN_BOX_SIDE) & (boxes[:, 3] - boxes[:, 1] >= MIN_BOX_SIDE)
    tried = [t for t, u in zip(missed, usable) if u]
    if not tried:
        return missed
    res = predictor.prompt(boxes=boxes[usable])
    packed, counts = found.sampler.sample(res.masks, res.boxes)
    # the last mask as it was (not moved by the velocity as in step 1: on the development seeds 2-7 that lost
    # 0.002 IDF1 here; a prompt box already carries the motion)
    same = packed_iou(np.stack([t.grid_mask for t in tried]), np.array([t.grid_count for t in tried]),
                      np.stack([t.box for t in tried]).astype(np.float32), packed, counts, res.boxes).diagonal()
    got: set[int] = set()
    for k, t in enumerate(tried):
        if (same[k] >= cfg.recover_min_iou and found.free(packed[k:k + 1], counts[k:k + 1], res.boxes[k:k + 1])[0]
                and found.accept(t, res.masks[k], float(res.scores[k]), packed[k], counts[k], res.boxes[k])):
            got.add(id(t))
    return [t for t in missed if id(t) not in got]


def _with_ids(seg: Segments, ids: list[int]) -> Segments:
    if seg.extra.get("recovered_ids") == ids:
        return seg
    return replace(seg, extra={**seg.extra, "recovered_ids": ids})


def _append(seg: Segments, accepted: list[tuple[Any, np.ndarray, float]]) -> Segments:
    """seg + one thing row per (track, mask, score); the new masks are taken out of seg's stuff segments."""
    n, k = len(seg), len(accepted)
    new = np.stack([m for _, m, _ in accepted])
    masks = seg.masks.copy()
    stuff = ~seg.is_thing
    masks[stuff] &= ~new.any(0)
    boxes = seg.boxes.copy()
    if stuff.any():  # stuff masks lost pixels: their tight boxes may have shrunk
        boxes[stuff] = masks_to_boxes(masks[stuff])
    emb = None
    if seg.embeddings is not None:
        d = seg.embeddings.shape[1]
        emb = np.stack([t.embedding if t.embedding is not None and t.embedding.shape[0] == d
                        else np.zeros(d, np.float32) for t, _, _ in accepted]).astype(np.float32)
    added = Segments(masks=new, scores=[s for _, _, s in accepted], class_ids=[t.class_id for t, _, _ in accepted],
                     class_names=[t.class_name for t, _, _ in accepted], is_thing=np.ones(k, bool),
                     track_ids=[t.track_id for t, _, _ in accepted], embeddings=emb)
    out = Segments.cat([replace(seg, masks=masks, boxes=boxes), added])
    for key, v in seg.extra.items():
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            if key == "panoptic_ids":
                add = more_thing_ids(v, seg.is_thing, [t.class_id for t, _, _ in accepted]).astype(v.dtype)
            else:
                add = np.zeros((k, *v.shape[1:]), v.dtype)
            out.extra[key] = np.concatenate([v, add])
    out.extra["recovered_ids"] = [int(t.track_id) for t, _, _ in accepted]
    return out


__all__ = ["recover_missed"]
