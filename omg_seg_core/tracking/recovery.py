"""Re-finding tracked objects that this frame's segments missed (not official): a box prompt at the last box.

A small model misses an object for a frame or two (half hidden, small, merged into a neighbour's mask). The
tracker keeps its track alive (`max_age`), but the frame has no segment for it, so the object has neither mask
nor id in that frame. `recover_missed` runs ONE batched box prompt on the predictor's cached features of the
same frame: for each confirmed track unseen for 1..`recover_max_gap` frames, its last box moved by its velocity
and grown by `recover_box_expand` of its size per side. A prompt mask is accepted when

- its IoU with the track's last mask (on the tracker's IoU grid) is >= `recover_min_iou`: the same place, about
  the same shape, so most likely the same object;
- its IoU with every thing segment of the frame and every mask accepted before it is < `recover_max_overlap`:
  not an object the frame already has.

An accepted mask joins the frame as a thing segment with the track's id, class and embedding and the prompt's
score. It yields to the frame's thing segments (their pixels are taken out of it) and takes its pixels from the
stuff segments, so a panoptic result stays a partition. Per-row numpy arrays in `extra` grow with it
(`panoptic_ids`: new thing ids continuing the numbering, as split_apart does; others: zeros), and
`extra["recovered_ids"]` lists the recovered track ids. The tracker's state is not changed: a recovered object is
still "missed" for the life cycle, and the next detection continues its track as before.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..structures import Segments, masks_to_boxes, more_thing_ids
from .similarity import GridSampler, grown_boxes, packed_iou
from .track import CONFIRMED
from .tracker import Tracker

#: Prompt boxes narrower or lower than this (pixels, after clipping to the image) are not tried.
MIN_BOX_SIDE = 2.0


def recover_missed(tracker: Tracker, segments: Segments, predictor: Any) -> Segments:
    """`segments` (the frame's tracked output of `tracker.update`) plus the confirmed tracks it missed, re-found
    by a box prompt on `predictor`'s cached features of the SAME frame (module docstring).

    Returns a new Segments; when recovery is off (`recover_max_gap` 0), nothing is missing or nothing is found,
    it is `segments` with `extra["recovered_ids"]` = [] (masks and rows shared, not copied).
    """
    cfg = tracker.config
    frame = tracker.frame_index
    missed = [t for t in tracker.tracks
              if t.state == CONFIRMED and 0 < frame - t.last_frame <= cfg.recover_max_gap]
    if not missed or predictor is None:
        return _with_ids(segments, [])
    h, w = segments.image_size
    gap = np.array([frame - t.last_frame for t in missed], np.float32)[:, None]
    boxes = np.stack([t.box for t in missed]).astype(np.float32)
    shift = np.stack([t.velocity for t in missed]).astype(np.float32) * gap
    boxes = grown_boxes(boxes + np.concatenate([shift, shift], 1), cfg.recover_box_expand, (h, w))
    usable = (boxes[:, 2] - boxes[:, 0] >= MIN_BOX_SIDE) & (boxes[:, 3] - boxes[:, 1] >= MIN_BOX_SIDE)
    missed, boxes = [t for t, u in zip(missed, usable) if u], boxes[usable]
    if not missed:
        return _with_ids(segments, [])
    res = predictor.prompt(boxes=boxes)
    sampler = GridSampler((h, w), cfg.iou_grid)  # the tracker's grid layout (same size and iou_grid)
    p_packed, p_counts = sampler.sample(res.masks, res.boxes)
    things = np.flatnonzero(segments.is_thing)
    f_packed, f_counts = sampler.sample(segments.masks[things], segments.boxes[things])
    f_boxes = segments.boxes[things]
    taken = segments.masks[things].any(0) if things.size else np.zeros((h, w), bool)
    accepted: list[tuple[Any, np.ndarray, float]] = []
    kept: list[int] = []
    for k, t in enumerate(missed):
        if not res.masks[k].any():
            continue
        mine = (p_packed[k:k + 1], p_counts[k:k + 1], res.boxes[k:k + 1])
        if packed_iou(t.grid_mask[None], np.array([t.grid_count]), t.box[None], *mine)[0, 0] < cfg.recover_min_iou:
            continue
        others = [packed_iou(*mine, f_packed, f_counts, f_boxes)] if things.size else []
        if kept:
            others.append(packed_iou(*mine, p_packed[kept], p_counts[kept], res.boxes[kept]))
        if any(o.max() >= cfg.recover_max_overlap for o in others):
            continue
        mask = res.masks[k] & ~taken
        if not mask.any():
            continue
        kept.append(k)
        accepted.append((t, mask, float(res.scores[k])))
    if not accepted:
        return _with_ids(segments, [])
    return _append(segments, accepted)


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
    emb = None
    if seg.embeddings is not None:
        d = seg.embeddings.shape[1]
        emb = np.concatenate([seg.embeddings, np.stack([
            t.embedding if t.embedding is not None and t.embedding.shape[0] == d else np.zeros(d, np.float32)
            for t, _, _ in accepted]).astype(np.float32)])
    extra = dict(seg.extra)
    for key, v in seg.extra.items():
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            if key == "panoptic_ids":
                add = more_thing_ids(v, seg.is_thing, [t.class_id for t, _, _ in accepted]).astype(v.dtype)
            else:
                add = np.zeros((k, *v.shape[1:]), v.dtype)
            extra[key] = np.concatenate([v, add])
    extra["recovered_ids"] = [int(t.track_id) for t, _, _ in accepted]
    boxes = seg.boxes.copy()
    if stuff.any():  # stuff masks lost pixels: their tight boxes may have shrunk
        boxes[stuff] = masks_to_boxes(masks[stuff])
    return Segments(
        masks=np.concatenate([masks, new]),
        scores=np.concatenate([seg.scores, [s for _, _, s in accepted]]),
        class_ids=np.concatenate([seg.class_ids, [t.class_id for t, _, _ in accepted]]),
        class_names=list(seg.class_names) + [t.class_name for t, _, _ in accepted],
        is_thing=np.concatenate([seg.is_thing, np.ones(k, bool)]),
        boxes=np.concatenate([boxes, masks_to_boxes(new)]),
        track_ids=np.concatenate([seg.track_ids, [t.track_id for t, _, _ in accepted]]),
        query_index=np.concatenate([seg.query_index, np.full(k, -1, np.int64)]),
        embeddings=emb, task=seg.task, extra=extra)


__all__ = ["recover_missed"]
