"""Result types shared by every task.

`Segments` is the ONE result type: panoptic, instance, semantic, prompt and text calls all return it, the
tracker fills its `track_ids`, and the ROS adapter turns it into messages. Everything is numpy on the CPU and
at the ORIGINAL image resolution (H x W of the image given to `set_image`).

Conventions:
- masks: bool [N, H, W] (row-major, HxW).
- boxes: float32 [N, 4], xyxy in original-image pixels, x2/y2 exclusive (max index + 1, as mmdet's mask2bbox).
- class_ids: int64 [N], index into the active vocabulary (things first, then stuff); -1 = no class (prompt).
- track_ids: int64 [N], 0 = not tracked yet.
- embeddings: float32 [N, D], the decoder's query features for each segment (used by tracking), or None.
- boxes_3d: `Boxes3D` (metres, camera optical frame: x right, y down, z forward) when a depth image was given,
  else None.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import cv2
import numpy as np

#: Semantic label images use this value for "unlabelled" (mono16 top value), see ros_conventions.md.
SEMANTIC_IGNORE = 65535


def mask_extent(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """Tight box (x0, y0, x1, y1) of the nonzero pixels of one mask [H, W] (bool or numeric), x1/y1 exclusive (max
    index + 1); None when it has none. cv2.boundingRect of the mask's bytes: about 2x faster than numpy's
    any-over-rows / any-over-columns at 320x240 (every Segments computes its boxes, split_apart and edge
    refinement crop each mask to it)."""
    m = mask if mask.dtype == bool else mask != 0
    if m.size == 0:
        return None
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(m).view(np.uint8))
    return (x, y, x + w, y + h) if w else None


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes of bool masks [N, H, W] -> float32 [N, 4]; x2/y2 = max index + 1; empty -> zeros."""
    boxes = np.zeros((masks.shape[0], 4), np.float32)
    for i, mask in enumerate(masks):
        box = mask_extent(mask)
        if box is not None:
            boxes[i] = box
    return boxes


def more_thing_ids(panoptic_ids: np.ndarray, is_thing: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """int64 [len(class_ids)]: panoptic ids for new thing segments of `class_ids`, numbered as the official ones
    (class + k * 1000) with k continuing after the largest k among the things of `panoptic_ids` [N] (is_thing [N])."""
    things = np.asarray(panoptic_ids, np.int64)[np.asarray(is_thing, bool)]
    k = int((things // 1000).max()) + 1 if things.size else 1
    return np.array([int(c) + 1000 * (k + j) for j, c in enumerate(class_ids)], np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a [N, 4] and b [M, 4] -> float32 [N, M]."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks [H, W]; two empty masks give 1.0 (nothing to find, nothing found)."""
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(inter / union)


def mask_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact IoU of bool masks a [N, H, W], b [M, H, W] -> float64 [N, M] (0 where the union is empty)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"mask sizes differ: {a.shape[1:]} vs {b.shape[1:]}")
    fa = a.reshape(a.shape[0], a.shape[1] * a.shape[2]).astype(np.float32)
    fb = b.reshape(b.shape[0], b.shape[1] * b.shape[2]).astype(np.float32)
    inter = (fa @ fb.T).astype(np.float64)
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


#: Boxes3D.quality values: no usable depth pixel, fewer than the minimum number of points, a reliable answer.
QUALITY_NO_DEPTH, QUALITY_FEW_POINTS, QUALITY_OK = 0, 1, 2


@dataclass
class Boxes3D:
    """The 3D answer of N segments from a registered depth image (spatial/boxes3d.py computes it).

    Frame: the colour camera's optical frame (REP 103: x right, y down, z forward), metres.
    - position float32 [N, 3]: where the object is. Things: the centre of their box (completed behind the visible
      surface, see boxes3d.py); stuff: the median of its points.
    - surface float32 [N, 3]: the median of the segment's valid back-projected points (the robust centre of the
      VISIBLE surface, nearer to the camera than `position` by about half the object's depth).
    - size float32 [N, 3], rotation float32 [N, 3, 3]: the box centred at `position`; its axes are the columns of
      `rotation` (identity = axis-aligned in the camera frame), `size` along those axes. Things only: stuff rows
      have size 0 (a floor has no box).
    - num_points int32 [N]: valid depth points used; quality uint8 [N]: QUALITY_* above. Rows below QUALITY_OK
      have NaN position / surface and size 0.
    - plane float32 [N, 4]: for the largest stuff regions, (nx, ny, nz, d) with n a unit normal towards the
      camera and n . p + d = 0 on the plane; NaN elsewhere.
    """

    position: np.ndarray
    surface: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    num_points: np.ndarray
    quality: np.ndarray
    plane: np.ndarray

    def __post_init__(self) -> None:
        self.position = np.asarray(self.position, np.float32).reshape(-1, 3)
        n = self.position.shape[0]
        self.surface = np.asarray(self.surface, np.float32).reshape(n, 3)
        self.size = np.asarray(self.size, np.float32).reshape(n, 3)
        self.rotation = np.asarray(self.rotation, np.float32).reshape(n, 3, 3)
        self.num_points = np.asarray(self.num_points, np.int32).reshape(n)
        self.quality = np.asarray(self.quality, np.uint8).reshape(n)
        self.plane = np.asarray(self.plane, np.float32).reshape(n, 4)

    def __len__(self) -> int:
        return int(self.position.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """bool [N]: rows with a reliable position."""
        return self.quality >= QUALITY_OK

    @classmethod
    def empty(cls, n: int = 0) -> "Boxes3D":
        """n rows without any depth answer (QUALITY_NO_DEPTH)."""
        nan3 = np.full((n, 3), np.nan, np.float32)
        return cls(nan3, nan3.copy(), np.zeros((n, 3)), np.tile(np.eye(3), (n, 1, 1)), np.zeros(n), np.zeros(n),
                   np.full((n, 4), np.nan))

    def select(self, idx: np.ndarray) -> "Boxes3D":
        return Boxes3D(self.position[idx], self.surface[idx], self.size[idx], self.rotation[idx], self.num_points[idx],
                       self.quality[idx], self.plane[idx])

    @classmethod
    def cat(cls, parts: Sequence["Boxes3D"]) -> "Boxes3D":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("position", "surface", "size", "rotation", "num_points", "quality", "plane")))


@dataclass
class Segments:
    """N segments of one image (see module docstring for shapes and conventions)."""

    masks: np.ndarray                       # bool [N, H, W]
    scores: np.ndarray                      # float32 [N]
    class_ids: np.ndarray                   # int64 [N], -1 = none
    class_names: list[str]                  # len N ("" for none)
    is_thing: np.ndarray                    # bool [N]
    boxes: Optional[np.ndarray] = None      # float32 [N, 4] xyxy; computed from masks when None
    track_ids: Optional[np.ndarray] = None  # int64 [N], 0 = untracked
    embeddings: Optional[np.ndarray] = None  # float32 [N, D]
    query_index: Optional[np.ndarray] = None  # int64 [N], which decoder query produced it (-1 = none)
    task: str = ""                          # "panoptic" | "instances" | "semantic" | "prompt" | "text" | "targets"
    extra: dict = field(default_factory=dict)
    boxes_3d: Optional[Boxes3D] = None      # N rows, from a depth image (see Boxes3D); None without depth

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        if self.masks.ndim != 3:
            raise ValueError(f"Segments.masks must be [N, H, W], got shape {self.masks.shape}")
        n = self.masks.shape[0]
        self.scores = np.asarray(self.scores, np.float32).reshape(n)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(n)
        self.is_thing = np.asarray(self.is_thing, bool).reshape(n)
        self.class_names = list(self.class_names)
        if len(self.class_names) != n:
            raise ValueError(f"Segments: {n} masks but {len(self.class_names)} class names")
        self.boxes = masks_to_boxes(self.masks) if self.boxes is None else np.asarray(self.boxes, np.float32).reshape(n, 4)
        self.track_ids = np.zeros(n, np.int64) if self.track_ids is None else np.asarray(self.track_ids, np.int64).reshape(n)
        self.query_index = (np.full(n, -1, np.int64) if self.query_index is None
                            else np.asarray(self.query_index, np.int64).reshape(n))
        if self.embeddings is not None:
            emb = np.asarray(self.embeddings, np.float32)
            # reshape(0, -1) is ambiguous for numpy, so empty results keep their given width.
            self.embeddings = emb.reshape(n, -1) if n else emb.reshape(0, emb.shape[-1] if emb.ndim > 1 else 0)
        if self.boxes_3d is not None and len(self.boxes_3d) != n:
            raise ValueError(f"Segments: {n} masks but {len(self.boxes_3d)} 3D boxes")

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the original image."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @classmethod
    def empty(cls, image_size: tuple[int, int], task: str = "", embed_dim: Optional[int] = None) -> "Segments":
        h, w = image_size
        emb = None if embed_dim is None else np.zeros((0, embed_dim), np.float32)
        return cls(np.zeros((0, h, w), bool), np.zeros(0), np.zeros(0), [], np.zeros(0, bool), embeddings=emb, task=task)

    def select(self, index: Sequence[int] | np.ndarray) -> "Segments":
        """A new Segments with the rows `index` (ints, a bool mask or a slice), same order; `extra` is copied
        as a dict (its per-row arrays are NOT re-indexed: callers that keep per-row extras index them)."""
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        return replace(
            self,
            masks=self.masks[idx], scores=self.scores[idx], class_ids=self.class_ids[idx],
            class_names=[self.class_names[i] for i in idx], is_thing=self.is_thing[idx], boxes=self.boxes[idx],
            track_ids=self.track_ids[idx], query_index=self.query_index[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx], extra=dict(self.extra),
            boxes_3d=None if self.boxes_3d is None else self.boxes_3d.select(idx),
        )

    def __getitem__(self, index: Sequence[int] | np.ndarray | slice | int) -> "Segments":
        """`seg[seg.scores > 0.5]`, `seg[[2, 0]]`, `seg[1:3]`, `seg[0]` (a one-row Segments): see `select`."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return self.select(index)

    @classmethod
    def cat(cls, parts: Sequence["Segments"], task: Optional[str] = None) -> "Segments":
        """Rows of `parts` (same image size) in order, as one Segments. Embeddings are kept when every part has
        them (of one width), else dropped, and so are 3D boxes; `task` defaults to the first part's; `extra` is the
        first part's."""
        if not parts:
            raise ValueError("Segments.cat needs at least one Segments")
        sizes = {p.image_size for p in parts}
        if len(sizes) > 1:
            raise ValueError(f"Segments.cat: image sizes differ: {sorted(sizes)}")
        embs = [p.embeddings for p in parts]
        emb = None
        if all(e is not None for e in embs) and len({e.shape[1] for e in embs}) == 1:
            emb = np.concatenate(embs)
        first = parts[0]
        b3 = [p.boxes_3d for p in parts]
        return cls(masks=np.concatenate([p.masks for p in parts]), scores=np.concatenate([p.scores for p in parts]),
                   class_ids=np.concatenate([p.class_ids for p in parts]),
                   class_names=[n for p in parts for n in p.class_names],
                   is_thing=np.concatenate([p.is_thing for p in parts]),
                   boxes=np.concatenate([p.boxes for p in parts]),
                   track_ids=np.concatenate([p.track_ids for p in parts]),
                   embeddings=emb, query_index=np.concatenate([p.query_index for p in parts]),
                   task=first.task if task is None else task, extra=dict(first.extra),
                   boxes_3d=Boxes3D.cat(b3) if all(b is not None for b in b3) else None)

    def box_slice(self, i: int) -> tuple[int, int, int, int]:
        """Segment i's tight box as clipped integers (x0, y0, x1, y1) for slicing masks[i, y0:y1, x0:x1]; boxes
        come from the masks, so the whole mask lies inside (empty mask: x1 <= x0)."""
        h, w = self.image_size
        x0, y0, x1, y1 = (float(v) for v in self.boxes[i])
        return (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(w, int(np.ceil(x1))),
                min(h, int(np.ceil(y1))))

    def areas(self) -> np.ndarray:
        """Pixel count per mask, int64 [N]."""
        return self.masks.sum(axis=(1, 2), dtype=np.int64)

    def paint(self, values: Sequence[int], fill: int) -> np.ndarray:
        """uint16 [H, W] map: `values[i]` (clipped to 65535) where mask i is set, later segments winning, `fill`
        elsewhere; segments with a negative value are skipped. Each mask is only read inside its box (boxes are
        tight, see the module doc), which keeps a 640x480 frame's maps to a few ms."""
        values = np.asarray(values).reshape(-1)
        if values.shape[0] != len(self):
            raise ValueError(f"paint: {values.shape[0]} values for {len(self)} segments")
        out = np.full(self.image_size, fill, np.uint16)
        for i in range(len(self)):
            v = int(values[i])
            x0, y0, x1, y1 = self.box_slice(i)
            if v < 0 or x1 <= x0 or y1 <= y0:
                continue
            out[y0:y1, x0:x1][self.masks[i, y0:y1, x0:x1]] = min(v, 65535)
        return out

    def semantic_map(self, ignore: int = SEMANTIC_IGNORE) -> np.ndarray:
        """uint16 [H, W] class-id map; later segments overwrite earlier ones; `ignore` where no mask."""
        return self.paint(self.class_ids, ignore)

    def instance_id_map(self, use_track_ids: bool = True, things_only: bool = True) -> np.ndarray:
        """uint16 [H, W]: 0 = none, else track id (or 1-based segment index when untracked / use_track_ids=False)."""
        n = len(self)
        ids = np.where(use_track_ids & (self.track_ids > 0), self.track_ids, np.arange(1, n + 1))
        if things_only:
            ids = np.where(self.is_thing, ids, -1)
        return self.paint(ids, 0)

    def panoptic_id_map(self, void_id: int, label_divisor: int = 1000) -> np.ndarray:
        """int32 [H, W] in the official OMG-Seg convention: thing = cls + k*label_divisor (k = 1-based instance
        counter, or the track id when tracked), stuff = cls, `void_id` (= number of classes) elsewhere."""
        out = np.full(self.image_size, void_id, np.int32)
        k = 0
        for i, m in enumerate(self.masks):
            c = int(self.class_ids[i])
            if self.is_thing[i]:
                k += 1
                inst = int(self.track_ids[i]) if self.track_ids[i] > 0 else k
                out[m] = c + inst * label_divisor
            else:
                out[m] = c
        return out
