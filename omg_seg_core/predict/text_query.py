"""Free-text requests ("segment the red box"): phrase extraction and per-query scoring.

Scoring (per learned query q, last decoder layer):
1. class head: the phrase is added to the active vocabulary as one extra class (a vocabulary class that has the
   phrase as a synonym is dropped so the two do not split the probability), logits = classify(class_embed, ...)
   with the zero "no object" column, softmax -> p_in[q, c]. Queries the model calls "no object" get a low
   phrase probability, and a phrase competes with the vocabulary ("red box" vs "box" vs "ball").
2. CLIP head (ConvNeXt-L only): the query's mask-pooled CLIP region embedding is classified against the same
   text embeddings (no "no object" column) -> p_out[q, c]; geometric ensemble as the official open-vocabulary
   evaluation (FC-CLIP): e = p_in^(1-a) * p_out^a with a = ensemble_alpha_seen for vocabulary classes and
   ensemble_alpha_unseen for the phrase, renormalised over classes and multiplied by (1 - p_void).
score[q] = the phrase's probability; models without a CLIP head use p_in alone.
"""
from __future__ import annotations

import re
from typing import Optional

import torch
import torch.nn.functional as F

from ..model.classifier import classify

#: Leading request words removed before embedding ("please show me the red box" -> "red box").
COMMAND_PHRASES = (
    "can you", "could you", "would you", "will you", "i want", "i need", "give me", "show me", "find me",
    "get me", "point to", "point at", "where is", "where are", "look for", "search for", "segment", "find",
    "show", "select", "pick", "pick up", "highlight", "detect", "locate", "mask", "get", "track", "grab",
    "please", "out", "all", "every", "the", "a", "an", "me", "of",
)
_COMMANDS = sorted((tuple(p.split()) for p in COMMAND_PHRASES), key=len, reverse=True)
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def extract_phrase(query: str) -> str:
    """Strip request words and punctuation: "Segment the red box, please!" -> "red box".

    Raises ValueError naming the query when it is not a string, empty, or only command words.
    """
    if not isinstance(query, str):
        raise ValueError(f"text query must be a string, got {type(query).__name__}: {query!r}")
    words = _WORD.findall(query.lower().replace("_", " "))
    if words and words[-1] == "please":
        words = words[:-1]
    changed = True
    while changed and words:
        changed = False
        for cmd in _COMMANDS:
            if tuple(words[:len(cmd)]) == cmd:
                words = words[len(cmd):]
                changed = True
                break
    if not words:
        raise ValueError(f"text query {query!r} contains no object description")
    return " ".join(words)


def phrase_scores(class_embed: torch.Tensor, vocab_embed: torch.Tensor, phrase_embed: torch.Tensor,
                  logit_scale: float, duplicate_class: Optional[int] = None,
                  region_embed: Optional[torch.Tensor] = None, alpha_seen: float = 0.4,
                  alpha_unseen: float = 0.8) -> torch.Tensor:
    """Probability that each query shows the phrase (see module docstring) -> float32 [Q].

    class_embed [Q, E] (normalised); vocab_embed [C, K, E]; phrase_embed [E]; region_embed [Q, E] or None
    (CLIP region embeddings, normalised here); duplicate_class: vocabulary index equal to the phrase (dropped).
    """
    vocab = vocab_embed.float()
    if duplicate_class is not None:
        vocab = torch.cat([vocab[:duplicate_class], vocab[duplicate_class + 1:]])
    k = vocab.shape[1] if vocab.shape[0] else 1
    text = torch.cat([vocab, phrase_embed.float().reshape(1, 1, -1).expand(1, k, -1)])  # phrase = last class
    logits_in = classify(class_embed.float(), text, logit_scale)                           # [Q, C'+2]
    p_in = F.softmax(logits_in, dim=-1)
    if region_embed is None:
        return p_in[:, -2]
    p_void = p_in[:, -1:]
    region = F.normalize(region_embed.float(), dim=-1)
    p_out = F.softmax(classify(region, text, logit_scale)[:, :-1], dim=-1)                 # [Q, C'+1]
    alpha = torch.full((text.shape[0],), alpha_seen, device=p_out.device)
    alpha[-1] = alpha_unseen
    ens = p_in[:, :-1].clamp_min(1e-12) ** (1 - alpha) * p_out.clamp_min(1e-12) ** alpha
    ens = ens / ens.sum(-1, keepdim=True)
    return (ens[:, -1:] * (1.0 - p_void)).squeeze(-1)


__all__ = ["extract_phrase", "phrase_scores", "COMMAND_PHRASES"]
