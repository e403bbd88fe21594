"""Training losses (Mask2Former / OMG-Seg style) for all co-trained tasks.

- Set prediction (panoptic, per decoder layer = deep supervision): Hungarian matching per layer, class
  cross-entropy over [C classes + no-object] with the no-object weight 0.1, mask BCE + dice on `num_points`
  importance-sampled points (oversample 3x, 75 % most uncertain), objectness BCE towards the matched mask's IoU.
- Prompt queries (points/boxes from ground truth): the i-th prompt must produce the i-th target mask (no
  matching), same mask / class / objectness terms.
- Referring text: contrastive (InfoNCE) between a matched query's class embedding and the phrase embeddings of
  all distinct phrases in the batch (plus, with loss.text_negative_words, their attribute-swapped variants as
  negatives: `attribute_negatives`).
- Video (frame pairs): InfoNCE between query features of the same object in the two frames (what the tracker
  uses as its appearance embedding).

All mask losses are normalised by the number of target masks in the batch, as in Mask2Former.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .matcher import point_sample


def sample_uncertain_points(mask_logits: torch.Tensor, num_points: int, oversample: float = 3.0,
                            importance: float = 0.75, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Mask2Former's `get_uncertain_point_coords_with_randomness`.

    mask_logits [N, h, w] -> coords [N, num_points, 2] (x, y in [0, 1]); uncertainty = -|logit|.
    """
    n = mask_logits.shape[0]
    k = int(num_points * oversample)
    cand = torch.rand(n, k, 2, generator=generator, device=mask_logits.device)
    unc = -point_sample(mask_logits.detach().float(), cand).abs()           # [N, k]
    n_imp = int(importance * num_points)
    idx = unc.topk(n_imp, dim=1).indices
    imp = torch.gather(cand, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    rnd = torch.rand(n, num_points - n_imp, 2, generator=generator, device=mask_logits.device)
    return torch.cat([imp, rnd], dim=1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """logits, targets [N, P] -> sum over masks of (1 - dice) / num_masks."""
    p = logits.sigmoid()
    num = 2 * (p * targets).sum(-1)
    den = p.sum(-1) + targets.sum(-1)
    return (1 - (num + 1) / (den + 1)).sum() / num_masks


def bce_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum() / num_masks


def point_mask_losses(pred: torch.Tensor, gt: torch.Tensor, num_points: int, num_masks: float,
                      generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pred [N, h, w] logits, gt [N, H, W] {0,1} -> (bce, dice, iou [N] detached point IoU of pred>0 vs gt)."""
    if pred.shape[0] == 0:
        z = pred.sum() * 0.0
        return z, z, pred.new_zeros(0)
    coords = sample_uncertain_points(pred, num_points, generator=generator)
    pl = point_sample(pred.float(), coords)
    gl = point_sample(gt.float(), coords)
    with torch.no_grad():
        pb, gb = pl > 0, gl > 0.5
        inter = (pb & gb).sum(1).float()
        union = (pb | gb).sum(1).float().clamp(min=1)
        iou = inter / union
    return bce_loss(pl, gl, num_masks), dice_loss(pl, gl, num_masks), iou


@dataclass
class LossWeights:
    cls: float = 2.0
    mask: float = 5.0
    dice: float = 5.0
    objectness: float = 1.0
    prompt: float = 1.0      # multiplies the prompt-query mask/dice/class terms
    text: float = 1.0        # referring contrastive loss
    track: float = 0.5       # frame-pair embedding loss
    no_object: float = 0.1   # class weight of the no-object column


def set_losses(class_logits: torch.Tensor, mask_logits: torch.Tensor, iou_logits: torch.Tensor,
               matches: list[tuple[torch.Tensor, torch.Tensor]], labels: list[torch.Tensor],
               masks: list[torch.Tensor], num_masks: float, w: LossWeights, num_points: int,
               generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """One decoder layer's set-prediction losses.

    class_logits [B, Q, C+1] (last column = no-object), mask_logits [B, Q, h, w], iou_logits [B, Q, 1];
    matches: per image (query_idx, target_idx); labels[b] [M_b]; masks[b] [M_b, H, W].
    """
    b, q, c1 = class_logits.shape
    tgt_cls = torch.full((b, q), c1 - 1, dtype=torch.long, device=class_logits.device)
    for i, (qi, ti) in enumerate(matches):
        tgt_cls[i, qi] = labels[i][ti]
    cw = torch.ones(c1, device=class_logits.device)
    cw[-1] = w.no_object
    loss_cls = F.cross_entropy(class_logits.float().flatten(0, 1), tgt_cls.flatten(), weight=cw)

    pred = torch.cat([mask_logits[i, qi] for i, (qi, _) in enumerate(matches)])
    gt = torch.cat([masks[i][ti] for i, (_, ti) in enumerate(matches)])
    loss_bce, loss_dice, iou = point_mask_losses(pred, gt, num_points, num_masks, generator)

    obj_t = torch.zeros(b, q, device=iou_logits.device)
    k = 0
    for i, (qi, _) in enumerate(matches):
        obj_t[i, qi] = iou[k:k + len(qi)]
        k += len(qi)
    loss_obj = F.binary_cross_entropy_with_logits(iou_logits.float().squeeze(-1), obj_t)
    return {"cls": w.cls * loss_cls, "mask": w.mask * loss_bce, "dice": w.dice * loss_dice,
            "obj": w.objectness * loss_obj}


def prompt_losses(class_logits: torch.Tensor, mask_logits: torch.Tensor, iou_logits: torch.Tensor,
                  labels: torch.Tensor, masks: torch.Tensor, w: LossWeights, num_points: int,
                  generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Prompt queries, one per target (no matching). class_logits [N, C+1], mask_logits [N, h, w],
    iou_logits [N, 1], labels [N], masks [N, H, W]."""
    n = max(int(labels.shape[0]), 1)
    loss_bce, loss_dice, iou = point_mask_losses(mask_logits, masks, num_points, float(n), generator)
    loss_cls = F.cross_entropy(class_logits.float(), labels) if labels.numel() else class_logits.sum() * 0
    loss_obj = (F.binary_cross_entropy_with_logits(iou_logits.float().squeeze(-1), iou) if labels.numel()
                else iou_logits.sum() * 0)
    s = w.prompt
    return {"p_cls": s * w.cls * loss_cls, "p_mask": s * w.mask * loss_bce, "p_dice": s * w.dice * loss_dice,
            "p_obj": s * w.objectness * loss_obj}


def attribute_negatives(phrases: list[str], groups: list[list[str]]) -> list[str]:
    """Phrases made from `phrases` by swapping ONE word that belongs to a group in `groups` for another word of
    that group ("red box" -> "green box", "small red box" -> "large red box"), without the given phrases
    themselves, in a fixed order. groups: lists of interchangeable single words (loss.text_negative_words)."""
    given = set(phrases)
    out: dict[str, None] = {}
    for p in phrases:
        words = p.split()
        for i, w in enumerate(words):
            for g in groups:
                if w in g:
                    for alt in g:
                        v = " ".join(words[:i] + [alt] + words[i + 1:])
                        if alt != w and v not in given:
                            out.setdefault(v, None)
    return list(out)


def contrastive_text_loss(query_embed: torch.Tensor, phrase_idx: torch.Tensor, phrase_embed: torch.Tensor,
                          scale: float) -> torch.Tensor:
    """InfoNCE of matched query class embeddings against all phrases of the batch.

    query_embed [K, E] (L2-normalised), phrase_idx [K] index into phrase_embed [U, E] (L2-normalised).
    """
    if query_embed.shape[0] == 0 or phrase_embed.shape[0] < 2:
        return query_embed.sum() * 0.0
    logits = scale * query_embed.float() @ phrase_embed.float().T
    return F.cross_entropy(logits, phrase_idx)


def pair_embedding_loss(emb_a: torch.Tensor, ids_a: torch.Tensor, emb_b: torch.Tensor, ids_b: torch.Tensor,
                        temperature: float = 0.1) -> torch.Tensor:
    """Frame-pair association: for objects present in both frames, the query feature in frame A must be closest
    to the same object's query feature in frame B (InfoNCE over frame-B objects, both directions).

    emb_a [Ka, D], ids_a [Ka] instance ids; emb_b [Kb, D], ids_b [Kb].
    """
    if emb_a.shape[0] == 0 or emb_b.shape[0] < 2:
        return emb_a.sum() * 0.0
    same = ids_a[:, None] == ids_b[None, :]
    rows = same.any(1)
    if not rows.any():
        return emb_a.sum() * 0.0
    a = F.normalize(emb_a.float(), dim=-1)
    bb = F.normalize(emb_b.float(), dim=-1)
    logits = a @ bb.T / temperature
    tgt_ab = same.float().argmax(1)
    loss = F.cross_entropy(logits[rows], tgt_ab[rows])
    cols = same.any(0)
    tgt_ba = same.float().argmax(0)
    loss = loss + F.cross_entropy(logits.T[cols], tgt_ba[cols]) if emb_a.shape[0] >= 2 else loss
    return loss




def referring_retrieval_loss(query_scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Top-1 retrieval as a loss: `query_scores` [U, Q] are the per-query scores `text()` ranks by (here the log
    probability of the phrase class, see text/query.py); softmax over ALL Q queries of the image (unmatched ones
    included) must pick a query matched to an object the phrase describes. positives bool [U, Q], >= 1 per row."""
    if query_scores.shape[0] == 0:
        return query_scores.sum() * 0.0
    pos = torch.where(positives, query_scores, torch.full_like(query_scores, -1e4))
    return (torch.logsumexp(query_scores, 1) - torch.logsumexp(pos, 1)).mean()


__all__ = ["LossWeights", "set_losses", "prompt_losses", "contrastive_text_loss", "pair_embedding_loss",
           "referring_retrieval_loss", "attribute_negatives",
           "point_mask_losses", "sample_uncertain_points", "dice_loss", "bce_loss"]
