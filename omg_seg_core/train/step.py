"""One co-training step: panoptic + prompt + referring-text + frame-pair losses on one batch (OMG-Seg style).

All tasks share one forward of the backbone and pixel decoder; the decoder runs twice (learned queries, then the
batch's ground-truth prompt queries). Deep supervision: the set and prompt losses are applied to the
prediction before decoder layer 0 and after every layer, each layer with its own Hungarian matching.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from ..model.classifier import classify
from ..text.vocabulary import VILD_TEMPLATES, Vocabulary, embed_synonyms
from .config import LossConfig
from .data import Batch
from ..predict.text_query import extract_phrase
from .losses import (LossWeights, attribute_negatives, contrastive_text_loss, pair_embedding_loss, prompt_losses,
                     referring_retrieval_loss, set_losses)
from .matcher import HungarianMatcher, MatcherWeights


class _GradEncoder:
    """Adapter giving `embed_synonyms` (which calls `.encode`) the differentiable path of a SentenceTextEncoder."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder

    def encode(self, phrases: Sequence[str]) -> torch.Tensor:
        return torch.nn.functional.normalize(self.encoder.encode_train(list(phrases)), dim=-1)


def class_text_embed(encoder, vocab: Vocabulary, trainable: bool) -> torch.Tensor:
    """[C, K, E] class embeddings with the same math as inference (`embed_synonyms`, 14 ViLD templates);
    differentiable w.r.t. the projection when `trainable` (small model), fixed otherwise (frozen CLIP)."""
    if trainable:
        return embed_synonyms(_GradEncoder(encoder), vocab.synonyms(), VILD_TEMPLATES)
    return embed_synonyms(encoder, vocab.synonyms(), VILD_TEMPLATES)


def phrase_embed(encoder, phrases: list[str], trainable: bool) -> torch.Tensor:
    """Referring phrases (already through `extract_phrase`) -> [U, E], embedded exactly as the predictor's
    `text()` does: one synonym through the 14 ViLD templates (`embed_synonyms`)."""
    enc = _GradEncoder(encoder) if trainable else encoder
    return embed_synonyms(enc, [[p] for p in phrases], VILD_TEMPLATES)[:, 0]


def clean_phrase(p: str) -> str:
    """The phrase `text()` would embed for request `p` ("" when nothing is left)."""
    if not p:
        return ""
    try:
        return extract_phrase(p)
    except ValueError:
        return ""


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]
    total: torch.Tensor
    stats: dict[str, float]


class CoTrainingLoss(nn.Module):
    """Computes every task's loss for a Batch. `encoder` is a TextEncoder; `trainable_text` says whether it has a
    differentiable `encode_train` (the small model's learned projection)."""

    def __init__(self, cfg: LossConfig, vocab: Vocabulary, encoder, trainable_text: bool, logit_scale: float,
                 seed: int = 0, teacher: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.teacher = teacher  # frozen model whose pixel-decoder outputs the `distill` term matches (or None)
        self.cfg = cfg
        self.vocab = vocab
        self.encoder = encoder
        self.trainable_text = trainable_text
        self.logit_scale = logit_scale
        self.w = LossWeights(cls=cfg.cls, mask=cfg.mask, dice=cfg.dice, objectness=cfg.objectness,
                             prompt=cfg.prompt, text=cfg.text, track=cfg.track, no_object=cfg.no_object)
        self.matcher = HungarianMatcher(MatcherWeights(cfg.cls, cfg.mask, cfg.dice), cfg.num_points)
        self.gen = torch.Generator().manual_seed(seed)  # point sampling; part of the trainer's RNG state
        self._fixed_text: Optional[torch.Tensor] = None

    def text_embed(self) -> torch.Tensor:
        if self.trainable_text:
            return class_text_embed(self.encoder, self.vocab, True)
        if self._fixed_text is None:
            self._fixed_text = class_text_embed(self.encoder, self.vocab, False)
        return self._fixed_text

    def distill_loss(self, images: torch.Tensor, mask_features: torch.Tensor,
                     memory: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean squared difference to the teacher's pixel-decoder outputs on the same images: mask features
        [B, D, H/4, W/4] plus each memory level [B, D, H/s, W/s], the levels weighted alike."""
        if self.teacher.training:  # stays in eval mode whatever train() calls reach it
            self.teacher.eval()
        with torch.no_grad():
            t_mask, t_memory = self.teacher.pixel_decoder(self.teacher.backbone(images))
        terms = [torch.nn.functional.mse_loss(mask_features, t_mask)]
        terms += [torch.nn.functional.mse_loss(s, t) for s, t in zip(memory, t_memory)]
        return torch.stack(terms).mean()

    def forward(self, model: nn.Module, batch: Batch) -> StepOutput:
        cfg, w = self.cfg, self.w
        dev = batch.images.device
        text = self.text_embed().to(dev)
        feats = model.backbone(batch.images)
        mask_features, memory = model.pixel_decoder(feats)
        head = model.head
        out = head(mask_features, memory, all_layers=True)
        losses: dict[str, torch.Tensor] = {}
        if self.teacher is not None and cfg.distill > 0:
            losses["distill"] = cfg.distill * self.distill_loss(batch.images, mask_features, memory)
        labels, masks = batch.labels, batch.masks
        num_masks = float(max(sum(len(l) for l in labels), 1))
        n_pred = len(out.mask_logits)
        last_matches = None
        for j in range(n_pred):
            cls_logits = classify(out.class_embed[j], text, self.logit_scale)
            matches = self.matcher(cls_logits, out.mask_logits[j], labels, masks, self.gen)
            lj = set_losses(cls_logits, out.mask_logits[j], out.iou_logits[j], matches, labels, masks, num_masks,
                            w, cfg.num_points, self.gen)
            for k, v in lj.items():
                losses[k] = losses.get(k, 0.0) + v
            last_matches = matches

        # ---- referring text (last layer): query->phrase over the batch (attributes), and per image the ranking
        # text() uses: log p(phrase) from a softmax over [vocabulary (minus a class equal to the phrase), phrase,
        # no-object] for every query, softmax over queries -> the matched query must come first ---------------
        q_emb, q_pid, all_phr = [], [], []
        phr_index: dict[str, int] = {}
        per_image = []
        for b, (qi, ti) in enumerate(last_matches):
            img_phr: dict[str, list[int]] = {}
            for q, t in zip(qi.tolist(), ti.tolist()):
                p = clean_phrase(batch.phrases[b][t])
                if not p:
                    continue
                if p not in phr_index:
                    phr_index[p] = len(all_phr)
                    all_phr.append(p)
                q_emb.append(out.class_embed[-1][b, q])
                q_pid.append(phr_index[p])
                img_phr.setdefault(p, []).append(q)
            if img_phr:
                per_image.append((b, img_phr))
        if all_phr:
            negatives = attribute_negatives(all_phr, cfg.text_negative_words) if cfg.text_negative_words else []
            pe_all = phrase_embed(self.encoder, all_phr + negatives, self.trainable_text).to(dev)
            pe = pe_all[:len(all_phr)]
            loss_q2p = contrastive_text_loss(torch.stack(q_emb), torch.tensor(q_pid, device=dev), pe_all,
                                             cfg.text_scale)
            syns = self.vocab.synonyms()
            rows, pos_rows = [], []
            for b, img_phr in per_image:
                ce = out.class_embed[-1][b]
                for name, qs in img_phr.items():
                    dup = next((i for i, s in enumerate(syns) if name in s), None)
                    voc = text if dup is None else torch.cat([text[:dup], text[dup + 1:]])
                    t_all = torch.cat([voc, pe[phr_index[name]].reshape(1, 1, -1).expand(1, voc.shape[1], -1)])
                    rows.append(torch.log_softmax(classify(ce, t_all, self.logit_scale), -1)[:, -2])
                    pos = torch.zeros(ce.shape[0], dtype=torch.bool, device=dev)
                    pos[qs] = True
                    pos_rows.append(pos)
            loss_ret = referring_retrieval_loss(torch.stack(rows), torch.stack(pos_rows))
            losses["text"] = w.text * (loss_q2p + loss_ret)
        else:
            losses["text"] = out.class_embed[-1].sum() * 0.0

        # ---- video frame pairs: query features of the same object agree across the two frames --------------
        track_terms = []
        qf = out.query_feat_norm
        for a, b in batch.pairs:
            (qa, ta), (qb, tb) = last_matches[a], last_matches[b]
            track_terms.append(pair_embedding_loss(qf[a, qa], batch.instance_ids[a][ta], qf[b, qb],
                                                   batch.instance_ids[b][tb]))
        losses["track"] = w.track * (torch.stack(track_terms).mean() if track_terms else qf.sum() * 0.0)

        # ---- prompt queries (points / boxes sampled from ground truth), deep supervision ---------------------
        valid = batch.prompt_target >= 0
        if valid.any():
            pout = head.forward_prompts(mask_features, memory, batch.prompt_boxes.to(dev), batch.image_size,
                                        all_layers=True)
            bi, pi = valid.nonzero(as_tuple=True)
            ti = batch.prompt_target[bi, pi]
            p_labels = torch.stack([labels[b][t] for b, t in zip(bi.tolist(), ti.tolist())])
            p_masks = torch.stack([masks[b][t] for b, t in zip(bi.tolist(), ti.tolist())])
            for j in range(len(pout.mask_logits)):
                cl = classify(pout.class_embed[j][bi, pi], text, self.logit_scale)
                lj = prompt_losses(cl, pout.mask_logits[j][bi, pi], pout.iou_logits[j][bi, pi], p_labels, p_masks,
                                   w, cfg.num_points, self.gen)
                for k, v in lj.items():
                    losses[k] = losses.get(k, 0.0) + v
        total = sum(losses.values())
        stats = {k: float(v.detach()) for k, v in losses.items()}
        stats["n_matched"] = float(sum(len(q) for q, _ in last_matches))
        return StepOutput(losses, total, stats)


__all__ = ["CoTrainingLoss", "StepOutput", "class_text_embed", "phrase_embed"]
