"""Hungarian matching of decoder queries to ground-truth segments (Mask2Former's HungarianMatcher).

Cost of assigning query q to target t, computed on `num_points` points sampled uniformly at random (the same
points for predictions and targets, as Mask2Former does, so matching cost does not depend on resolution):

    C[q, t] = w_class * (-p_q(class_t)) + w_mask * BCE(mask_q, mask_t) + w_dice * dice(mask_q, mask_t)

Solved with scipy's `linear_sum_assignment` per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def point_sample(x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of maps at normalised points.

    x: [N, C, H, W] or [N, H, W]; coords: [N, P, 2] (x, y) in [0, 1] (align_corners=False convention)
    -> [N, C, P] (or [N, P] for 3-D input).
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(1)
    out = F.grid_sample(x, 2.0 * coords.unsqueeze(2) - 1.0, mode="bilinear", padding_mode="zeros",
                        align_corners=False).squeeze(3)
    return out.squeeze(1) if squeeze else out


def batch_dice_cost(pred_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """pred_logits [Q, P], targets [M, P] in {0,1} -> [Q, M] dice cost (1 - dice)."""
    p = pred_logits.sigmoid()
    num = 2 * p @ targets.T
    den = p.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (num + 1) / (den + 1)


def batch_bce_cost(pred_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """pred_logits [Q, P], targets [M, P] -> [Q, M] mean binary cross-entropy over points."""
    p = pred_logits.shape[1]
    pos = F.binary_cross_entropy_with_logits(pred_logits, torch.ones_like(pred_logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(pred_logits, torch.zeros_like(pred_logits), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / p


@dataclass
class MatcherWeights:
    cls: float = 2.0
    mask: float = 5.0
    dice: float = 5.0


class HungarianMatcher:
    """`match(class_logits, mask_logits, labels, masks) -> list of (query_idx, target_idx)` LongTensors per image."""

    def __init__(self, weights: MatcherWeights = MatcherWeights(), num_points: int = 1024) -> None:
        self.w = weights
        self.num_points = num_points

    @torch.no_grad()
    def match_one(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                  masks: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """class_logits [Q, C+1]; mask_logits [Q, h, w]; labels [M] (int64); masks [M, H, W] (bool/float).

        Returns (query_idx [K], target_idx [K]) with K = min(Q, M), sorted by query index.
        """
        m = labels.shape[0]
        if m == 0:
            e = torch.zeros(0, dtype=torch.long)
            return e, e
        prob = class_logits.float().softmax(-1)
        cost_class = -prob[:, labels]
        coords = torch.rand(1, self.num_points, 2, generator=generator, device=mask_logits.device)
        pm = point_sample(mask_logits.float().unsqueeze(0), coords).squeeze(0)           # [Q, P]
        tm = point_sample(masks.float().unsqueeze(0), coords).squeeze(0)                  # [M, P]
        cost = (self.w.cls * cost_class + self.w.mask * batch_bce_cost(pm, tm)
                + self.w.dice * batch_dice_cost(pm, tm))
        cost = torch.nan_to_num(cost, nan=1e4, posinf=1e4, neginf=-1e4)
        qi, ti = linear_sum_assignment(cost.cpu().numpy())
        order = np.argsort(qi)
        return (torch.as_tensor(qi[order], dtype=torch.long), torch.as_tensor(ti[order], dtype=torch.long))

    def __call__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: list[torch.Tensor],
                 masks: list[torch.Tensor], generator: torch.Generator | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Batched: class_logits [B, Q, C+1], mask_logits [B, Q, h, w], per-image labels / masks lists."""
        return [self.match_one(class_logits[b], mask_logits[b], labels[b], masks[b], generator)
                for b in range(class_logits.shape[0])]


__all__ = ["HungarianMatcher", "MatcherWeights", "point_sample", "batch_dice_cost", "batch_bce_cost"]
