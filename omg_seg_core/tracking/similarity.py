"""Vectorised similarity terms shared by the tracker and the target manager.

Masks are compared on a coarse grid (every `stride`-th pixel) rather than at full resolution: the IoU of two
masks is estimated from the same sample points, which is unbiased and costs N*M*G multiply-adds with G about
64x48, so 50 x 50 segments take well under a millisecond. Masks too small to be hit by enough grid points
fall back to box IoU (computed exactly from the boxes).
"""
from __future__ import annotations

import math

import numpy as np

#: A grid mask with fewer samples than this is considered too small for a reliable grid IoU.
MIN_GRID_SAMPLES = 4


def grid_stride(image_size: tuple[int, int], iou_grid: int) -> int:
    """Sampling stride so that the long image side has about `iou_grid` samples (>= 1)."""
    return max(1, math.ceil(max(image_size) / float(iou_grid)))


def grid_masks(masks: np.ndarray, stride: int) -> np.ndarray:
    """bool [N, H, W] -> float32 [N, G] sampled at the centre of each stride x stride cell."""
    off = stride // 2
    sub = masks[:, off::stride, off::stride]
    return sub.reshape(sub.shape[0], -1).astype(np.float32)


def grid_mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of grid masks a [N, G] and b [M, G] (float 0/1) -> float32 [N, M]; 0 where the union is empty."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


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


def mask_iou(grid_a: np.ndarray, boxes_a: np.ndarray, grid_b: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Grid-mask IoU [N, M], with box IoU for pairs where either mask has < MIN_GRID_SAMPLES grid samples."""
    iou = grid_mask_iou(grid_a, grid_b)
    small_a = grid_a.sum(1) < MIN_GRID_SAMPLES
    small_b = grid_b.sum(1) < MIN_GRID_SAMPLES
    if small_a.any() or small_b.any():
        small = small_a[:, None] | small_b[None, :]
        iou = np.where(small, box_iou(boxes_a, boxes_b), iou)
    return iou


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows of a float array [N, D] (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of already L2-normalised rows a [N, D], b [M, D] -> float32 [N, M]."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float32)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return (a @ b.T).astype(np.float32)


__all__ = ["grid_stride", "grid_masks", "grid_mask_iou", "box_iou", "mask_iou", "normalize_rows", "cosine",
           "MIN_GRID_SAMPLES"]
