"""Thing segments whose mask lies in two or more places far apart become one segment per place (not official).

A small model's object query sometimes answers for two look-alike objects at once: one mask covering two green
cylinders 60 px apart, so panoptic quality counts one false positive and two misses, and the tracker sees one
object jump between them. `split_apart_things` cuts such a mask at its gaps:

- the mask's 8-connected parts are found inside its box; a part is *large* when it holds at least
  `min_fraction` of the mask's pixels;
- large parts closer than `gap` x the image's long side (box-to-box distance; 0.025 = 8 px at 320x240) stay
  together, so an object cut in two by a thin occluder stays one segment;
- when two or more groups remain, each becomes a segment; small parts join the group of the nearest large part
  (centroid distance), so no pixel is dropped. Each piece keeps the segment's score, class, query index and
  embedding; the first (largest) piece keeps its panoptic id, the others get new thing ids (class + k * 1000,
  k continuing the official numbering).

Measured with the shipped omg-seg-tiny (docs/predictor.md, models/MODEL_CARD.md). Stuff segments are never split.
`TaskThresholds.split_apart_gap` < 0 switches it off (the official output).
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ..structures import Segments, mask_extent, more_thing_ids


def _box_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Distance in pixels between two xyxy boxes (0 when they touch or overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(dx, dy)


def _groups(boxes: np.ndarray, gap_px: float) -> list[int]:
    """Group label per box [K, 4]: boxes closer than gap_px (transitively) share a group."""
    group = list(range(len(boxes)))

    def find(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if _box_gap(boxes[i], boxes[j]) < gap_px:
                group[find(i)] = find(j)
    return [find(i) for i in range(len(boxes))]


def gap_pixels(gap: float, image_size: tuple[int, int]) -> float:
    """`split_apart_gap` (a fraction of the long side of an (H, W) image; < 0 = off) in pixels (< 0 = off)."""
    return gap * max(image_size)


def split_mask(mask: np.ndarray, gap_px: float, min_fraction: float) -> list[np.ndarray]:
    """Pieces (bool masks like `mask`, largest first) of one bool [H, W] mask; [mask] when it stays whole."""
    box = mask_extent(mask)
    if box is None:
        return [mask]
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], np.uint8)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(crop, connectivity=8)
    if n <= 2:  # background + one part
        return [mask]
    areas = stats[1:, cv2.CC_STAT_AREA]
    large = np.flatnonzero(areas >= min_fraction * areas.sum())
    if large.size < 2:
        return [mask]
    x, y, w, h = (stats[1 + large, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                                 cv2.CC_STAT_HEIGHT))
    group_of_large = _groups(np.stack([x, y, x + w, y + h], 1).astype(np.float64), gap_px)
    if len(set(group_of_large)) < 2:
        return [mask]
    # every part (large or small) joins the group of its nearest large part
    d = np.linalg.norm(centroids[1:, None, :] - centroids[1 + large][None, :, :], axis=2)   # [parts, large]
    part_group = np.asarray(group_of_large)[d.argmin(1)]
    lut = np.concatenate([[-1], part_group])                                          # label -> group
    group_map = lut[labels]
    pieces = []
    for g in sorted(set(group_of_large), key=lambda g: -int(areas[part_group == g].sum())):
        piece = np.zeros_like(mask, dtype=bool)
        piece[y0:y1, x0:x1] = group_map == g
        pieces.append(piece)
    return pieces


def mask_pieces(probs: np.ndarray, mask_threshold: float, gap_px: float, min_fraction: float, min_area: float = 1
                ) -> tuple[list[int], list[np.ndarray], list[float]]:
    """Candidate masks cut at their gaps: probs float [K, H, W] mask probabilities -> (row k of each piece, the
    piece bool [H, W], its mean probability), rows in order, a row's pieces largest first. A mask is
    probs[k] > mask_threshold; gap_px < 0 keeps masks whole (`split_mask`); pieces under `min_area` pixels and
    empty masks give nothing."""
    rows, pieces, conf = [], [], []
    for k in range(probs.shape[0]):
        mask = probs[k] > mask_threshold
        if not mask.any():
            continue
        for piece in (split_mask(mask, gap_px, min_fraction) if gap_px >= 0 else [mask]):
            if piece.sum() >= min_area:
                rows.append(k)
                pieces.append(piece)
                conf.append(float(probs[k][piece].mean()))
    return rows, pieces, conf


def split_apart_things(seg: Segments, gap: float, min_fraction: float) -> Segments:
    """Split thing segments of `seg` (masks bool [N, H, W]) into their far-apart pieces (module docstring).

    gap: box-to-box distance between pieces, as a fraction of the image's long side; < 0 returns `seg` unchanged.
    min_fraction: share of a mask's pixels a part needs to count as a piece of its own.
    Returns a new Segments (pieces of a row follow each other in the row's place) with
    `extra["split_apart"]` = number of segments added; `seg` itself is not modified.
    """
    if gap < 0 or len(seg) == 0:
        return seg
    gap_px = gap_pixels(gap, seg.image_size)
    rows: list[int] = []
    masks: list[np.ndarray] = []
    for i in range(len(seg)):
        pieces = split_mask(seg.masks[i], gap_px, min_fraction) if seg.is_thing[i] else [seg.masks[i]]
        rows += [i] * len(pieces)
        masks += pieces
    added = len(rows) - len(seg)
    if added == 0:
        return replace(seg, extra={**seg.extra, "split_apart": 0})
    out = replace(seg.select(rows), masks=np.stack(masks), boxes=None)  # boxes recomputed from the pieces
    pids = seg.extra.get("panoptic_ids")
    if pids is not None and len(pids) == len(seg):
        new = np.asarray(pids, np.int64)[rows]
        further = [j for j in range(1, len(rows)) if rows[j] == rows[j - 1]]  # further pieces of one segment
        new[further] = more_thing_ids(pids, seg.is_thing, seg.class_ids[[rows[j] for j in further]])
        out.extra["panoptic_ids"] = new
    out.extra["split_apart"] = added
    return out


__all__ = ["split_apart_things", "split_mask", "mask_pieces", "gap_pixels"]
