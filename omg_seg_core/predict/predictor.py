"""`OMGSegPredictor`: one model, every task, SamPredictor style.

    p = build_predictor("tiny")                  # or "convl" + weights, a checkpoint path; predict/build.py
    p = OMGSegPredictor(model)                   # a built OMGSeg (+ backend, text encoder, vocabulary)
    p.set_image(rgb_uint8)                       # pre-processing + image graph, features cached
    p.panoptic(); p.instances(); p.semantic()    # cheap: post-processing of the cached predictions
    p.prompt(points=[[x, y]], point_labels=[1], boxes=[[x1, y1, x2, y2]])   # prompt graph on cached features
    p.text("segment the red box")                # text tower + scoring of the cached queries

All coordinates are ORIGINAL-image pixels (x right, y down; boxes xyxy), all results are `Segments` at the
original resolution. Thresholds come from `TaskThresholds` (`set_thresholds`): the official OMG-Seg values,
except where the checkpoint records values tuned for it (`default_thresholds`; the shipped omg-seg-tiny keeps
partly occluded segments with iou_thr 0.6, models/MODEL_CARD.md). Per-stage timings of the last calls are in
`last_timings` (milliseconds).
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TaskThresholds, checkpoint_thresholds, default_vocabulary_path
from .batch import set_images, sync_device
from .edge_refine import refine_segments
from .exemplar_book import ExemplarBook
from .exemplar_requests import ExemplarRequests
from .text_query import extract_phrase
from ..model.classifier import classify
from .postprocess import (instance_results, panoptic_postprocess, prompt_postprocess,
                          semantic_postprocess)
from .preprocess import ImageMeta, original_to_resized_xy, point_prompt_boxes, validate_prompts
from .prompt_refine import refine_prompt_masks
from .prompt_select import choose_queries, replace_with_queries
from .split_apart import split_apart_things
from ..runtime.backend import Backend, ImageFeatures
from ..structures import Segments
from ..text import TextEncoder, make_text_encoder
from .text_request import text_request
from ..text.vocabulary import Vocabulary, class_embeddings, embed_synonyms, load_vocabulary


class OMGSegPredictor(ExemplarRequests):
    """See module docstring. Takes BUILT pieces (segment-anything's `SamPredictor(sam)`); `build_predictor`
    (predict/build.py) makes them from a model name or checkpoint. Construction arguments:

    model: a built `OMGSeg` (omg_seg_core.model), in eval mode on its device.
    backend: a `Backend` running the model's graphs (runtime/select.make_backend); None = PyTorch eager on the
        model's device.
    text_encoder: the `TextEncoder` for vocabularies and text requests; None = the one the model config names.
    vocabulary: YAML path / name in config/vocabularies / {"things", "stuff"} / Vocabulary; None = the
        checkpoint's own vocabulary (`meta["vocabulary"]`), else config/vocabularies/coco_panoptic.yaml.
    thresholds: post-processing thresholds; None = `default_thresholds` (the checkpoint's tuned values).
    long_side: keep-ratio resize of the long image side (default: the model config's).
    meta: what `load_model` returned with the model (checkpoint path, vocabulary, tuned thresholds).

    Several cameras: `PredictorView(predictor)` (predict/view.py) is a predictor with its own cached image (the
    attributes in IMAGE_STATE) on this one's model, backend, vocabulary and thresholds; `set_images(views, images)`
    (predict/batch.py) runs the image graph once for a batch of images.
    """

    #: What `set_image` caches for ONE image (a PredictorView keeps its own); everything else is shared.
    IMAGE_STATE = ("_features", "_meta", "_cls_logits", "_image", "last_timings")

    def __init__(self, model: nn.Module, backend: Optional[Backend] = None,
                 text_encoder: Optional[TextEncoder] = None,
                 vocabulary: Union[str, os.PathLike, dict, Vocabulary, None] = None,
                 thresholds: Optional[TaskThresholds] = None, long_side: Optional[int] = None,
                 meta: Optional[dict[str, Any]] = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"OMGSegPredictor takes a built OMGSeg; use build_predictor({model!r}) for names and "
                            "checkpoints")
        meta = dict(meta or {})
        self.model = model.eval()
        self.cfg: ModelConfig = self.model.cfg
        self.meta = meta
        self.long_side = int(long_side if long_side is not None else self.cfg.long_side)
        if self.long_side < 32:
            raise ValueError(f"long_side must be >= 32, got {long_side}")
        self.default_thresholds = checkpoint_thresholds(meta)
        self.thresholds = thresholds if thresholds is not None else self.default_thresholds
        self.exemplars = ExemplarBook()  # taught names (exemplar_book.py), used by text() and like()
        if backend is None:
            from ..runtime.torch_backend import TorchBackend

            backend = TorchBackend(model, device=str(next(model.parameters()).device))
        self.backend = backend
        self.device = torch.device(getattr(self.backend, "device", "cpu"))
        self.text_encoder = text_encoder if text_encoder is not None else make_text_encoder(
            self.cfg.text_encoder, model=self.model, weights=meta.get("text_weights"))
        if self.text_encoder.embed_dim != self.cfg.class_embed_dim:
            raise ValueError(f"text encoder {self.text_encoder.name!r} gives {self.text_encoder.embed_dim}-d "
                             f"embeddings but the model's class head expects {self.cfg.class_embed_dim}")
        self.last_timings: dict[str, float] = {}
        self._features: Optional[ImageFeatures] = None
        self._meta: Optional[ImageMeta] = None
        self._cls_logits: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # (text_embed, logits)
        self._image: Optional[np.ndarray] = None
        self._phrase_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.text_lock = threading.Lock()  # one caller of the text tower at a time (tokenizers are not thread-safe)
        # one image-graph call at a time: a batch computed for several cameras while another thread post-processes
        # (TensorRT execution contexts are not re-entrant); predict/batch.encode_images holds it
        self.graph_lock = threading.Lock()
        if vocabulary is None:
            vocabulary = meta.get("vocabulary") or default_vocabulary_path()
        self.set_vocabulary(vocabulary)

    # ---- configuration -------------------------------------------------------------------------------------
    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocab

    @property
    def class_names(self) -> list[str]:
        """Display names (first synonym) of the active vocabulary, class id order."""
        return self._names

    def vocabulary_embeddings(self, things: Union[Sequence[str], str, os.PathLike, dict, Vocabulary],
                              stuff: Sequence[str] = (), max_classes: Optional[int] = None,
                              cancel: Optional[threading.Event] = None) -> tuple[Vocabulary, torch.Tensor]:
        """(Vocabulary, text embeddings [C, K, E]) for names (things, stuff), a YAML path / vocabulary name, a dict
        or a Vocabulary, WITHOUT switching to it: the slow half of `set_vocabulary`, which a caller can run while
        frames keep using the current vocabulary. The text tower runs a few classes at a time, each step holding
        `text_lock`; `cancel` (set) stops it between steps (text.vocabulary.EmbeddingCancelled). More than
        `max_classes` classes is a ValueError, raised before any embedding."""
        vocab = _vocabulary(things, stuff)
        if max_classes is not None and vocab.num_classes > max_classes:
            raise ValueError(f"vocabulary has {vocab.num_classes} classes, more than the limit {max_classes} "
                             "(parameter limits.max_vocabulary)")
        return vocab, class_embeddings(self.text_encoder, vocab, lock=self.text_lock, cancel=cancel)

    def set_vocabulary(self, things: Union[Sequence[str], str, os.PathLike, dict, Vocabulary],
                       stuff: Sequence[str] = (), embeddings: Optional[torch.Tensor] = None) -> Vocabulary:
        """Switch the class list: names (things, stuff), a YAML path / vocabulary name, a dict, or a Vocabulary.
        Text embeddings come from the on-disk cache or are computed once; `embeddings` [C, K, E] (L2-normalised,
        e.g. an official `~/.cache/embd/*.pth` classifier, or what `vocabulary_embeddings` made) skips the text
        tower. Returns the new Vocabulary."""
        t0 = time.perf_counter()
        if embeddings is None:
            vocab, emb = self.vocabulary_embeddings(things, stuff)
        else:
            vocab = _vocabulary(things, stuff)
            emb = torch.as_tensor(embeddings).float()
            if emb.ndim != 3 or emb.shape[0] != vocab.num_classes or emb.shape[2] != self.cfg.class_embed_dim:
                raise ValueError(f"embeddings must be [{vocab.num_classes}, K, {self.cfg.class_embed_dim}] for this "
                                 f"vocabulary, got shape {tuple(emb.shape)}")
        self._vocab, self._names = vocab, vocab.display_names
        self._text_embed = emb.to(self.device)
        self._cls_logits = None
        self.last_timings["set_vocabulary"] = (time.perf_counter() - t0) * 1e3
        return vocab

    def set_thresholds(self, **kw: Any) -> TaskThresholds:
        """Update post-processing thresholds by name (unknown names -> ValueError); a value of None restores
        that threshold's `default_thresholds` value (the checkpoint's, else the official one)."""
        d = self.default_thresholds
        self.thresholds = self.thresholds.updated(**{k: getattr(d, k, None) if v is None else v
                                                     for k, v in kw.items()})
        return self.thresholds

    # ---- image ---------------------------------------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self._features is not None

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the current original image."""
        return self._require()[1].ori_shape

    @property
    def features(self) -> ImageFeatures:
        """The cached image graph outputs of the current image (backend's ImageFeatures)."""
        return self._require()[0]

    @property
    def image_meta(self) -> ImageMeta:
        """Sizes of the current image: original, resized, padded (preprocess.ImageMeta)."""
        return self._require()[1]

    @property
    def image(self) -> Optional[np.ndarray]:
        """The current RGB uint8 image [H, W, 3] (a copy made by set_image; the guide of edge refinement)."""
        return self._image

    @property
    def text_embed(self) -> torch.Tensor:
        """[C, K, E] text embeddings of the active vocabulary (K synonyms/templates, L2-normalised)."""
        return self._text_embed

    def set_image(self, image: np.ndarray) -> None:
        """RGB uint8 [H, W, 3] -> run pre-processing and the image graph; cache the features (a batch of one of
        predict/batch.set_images; a rejected image keeps the previous one cached)."""
        set_images([self], [image])

    def cache_image(self, image: np.ndarray, features: ImageFeatures, meta: ImageMeta,
                    timings: dict[str, float]) -> None:
        """Make `image` (RGB uint8 [H, W, 3]) the current image with its image-graph `features` (batch 1) and
        pre-processing `meta`; `timings`: ms per stage (preprocess, image_graph). Used by set_image/set_images."""
        self._features, self._meta, self._cls_logits = features, meta, None
        self._image = image.copy()  # the guide of edge refinement (callers may reuse their buffer)
        self.last_timings = dict(timings)
        self.last_timings["set_image"] = self.last_timings["preprocess"] + self.last_timings["image_graph"]

    @contextmanager
    def keep_image(self) -> Iterator[None]:
        """Run a block that may `set_image` another image, then make the image cached before it current again,
        with its features (every IMAGE_STATE attribute), without a second image-graph pass."""
        saved = {name: getattr(self, name) for name in self.IMAGE_STATE}
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    def clear_image(self) -> None:
        """Forget the cached image (every IMAGE_STATE attribute): a task then needs `set_image` first."""
        for name in self.IMAGE_STATE:
            setattr(self, name, {} if name == "last_timings" else None)

    def release(self) -> None:
        """Free the cached features and the backend's device memory (after an image-graph call in flight on another
        thread: graph_lock)."""
        self.clear_image()
        with self.graph_lock:
            self.backend.release()

    # ---- closed-vocabulary tasks ---------------------------------------------------------------------------
    def panoptic(self) -> Segments:
        """Official OMG-Seg panoptic fusion -> Segments (extra['panoptic_ids'] = official ids), then thing masks
        lying in far-apart places split into one segment each (thresholds.split_apart_gap; < 0: official) and
        borders snapped to colour edges (thresholds.edge_refine_radius; 0: official)."""
        feats, meta = self._require()
        cls = self._class_logits()
        th = self.thresholds
        with self.timed("postprocess"):
            seg = panoptic_postprocess(cls, feats.mask_logits[0], meta, self._vocab.num_things, self._names, th,
                                       query_feat=feats.query_feat[0])
            seg = split_apart_things(seg, th.split_apart_gap, th.split_apart_min_fraction)
            return self.edge_refine(seg, exclusive=True)

    def instances(self, min_score: Optional[float] = None, near: Optional[Any] = None) -> Segments:
        """Official instance results (top-k over queries x thing classes), best score first; masks lying in
        far-apart places split as in `panoptic()` (the pieces follow each other), then cut to max_per_image.
        `min_score`: also drop results scoring below it (thresholds.instance_score_thr applies either way).
        `near`: boxes [K, 4] xyxy in image pixels; only queries whose mask reaches into one of them (cheaper: the
        other masks are never computed)."""
        feats, meta = self._require()
        cls = self._class_logits()
        th = self.thresholds
        if min_score is not None:
            th = replace(th, instance_score_thr=max(float(min_score), th.instance_score_thr))
        with self.timed("postprocess"):
            res = instance_results(cls, feats.mask_logits[0], meta, self._vocab.num_things, self._names, th,
                                   query_feat=feats.query_feat[0], near=near)
            if len(res.row) == 0:
                return res.expand(self._names)
            # A query ranks for several classes with ONE mask: split and refine each query's mask once, then give
            # every result its query's pieces (the same masks as splitting and refining per result).
            pieces = split_apart_things(res.unique, th.split_apart_gap, th.split_apart_min_fraction)
            source = np.searchsorted(res.unique.query_index, pieces.query_index)  # piece -> unique row
            of_unique = [np.flatnonzero(source == u) for u in range(len(res.unique))]
            result = np.concatenate([np.full(len(of_unique[u]), r) for r, u in enumerate(res.row)])
            piece = np.concatenate([of_unique[u] for u in res.row])
            added = len(piece) - len(res.row)
            # still at most max_per_image results, as the official output (pieces are in score order)
            result, piece = result[:th.max_per_image], piece[:th.max_per_image]
            used, inverse = np.unique(piece, return_inverse=True)
            refined = self.edge_refine(pieces[used], exclusive=False)
            cls_ids = res.class_ids[result]
            out = Segments(masks=refined.masks[inverse], scores=res.scores[result], class_ids=cls_ids,
                           class_names=[self._names[i] for i in cls_ids], is_thing=np.ones(len(result), bool),
                           boxes=refined.boxes[inverse], query_index=pieces.query_index[piece],
                           embeddings=None if pieces.embeddings is None else pieces.embeddings[piece],
                           task="instances")
            out.extra["split_apart"] = added
            return out

    def semantic(self) -> Segments:
        """Mask2Former semantic inference -> one segment per present class (`Segments.semantic_map()`), borders
        snapped to colour edges (thresholds.edge_refine_radius; 0: official)."""
        feats, meta = self._require()
        cls = self._class_logits()
        with self.timed("postprocess"):
            seg = semantic_postprocess(cls, feats.mask_logits[0], meta, self._vocab.num_things, self._names,
                                       self.thresholds)
            return self.edge_refine(seg, exclusive=True)

    # ---- prompts -------------------------------------------------------------------------------------------
    def prompt(self, points: Optional[Any] = None, point_labels: Optional[Any] = None,
               boxes: Optional[Any] = None) -> Segments:
        """One mask + score per positive prompt, in order: positive points, then boxes.

        points [P, 2] xy and boxes [B, 4] xyxy in original-image pixels; point_labels [P]: 1 = positive,
        0 = negative (default all positive). Checked by preprocess.validate_prompts: a point must lie on a pixel
        (0 <= x < W, 0 <= y < H), a box reaching past the border is clipped to the image, one outside is refused. Each positive point becomes the box (x-3, y-3, x+3, y+3) in
        resized-image pixels (official), each box one prompt. Negative points are run as prompts too and
        remove from every positive mask the pixels their mask explains better (see postprocess.prompt_postprocess).
        score = sigmoid(objectness logit); class = most likely vocabulary class; extra['prompt_kind'].
        The chosen masks are then refined (prompt_refine.py): a box's cut to the box grown by
        thresholds.box_prompt_margin, a click's to its connected part under the click (thresholds.click_connected).
        thresholds.prompt_source ("auto" default, "decoder" = official, "queries") may answer a prompt with the
        object query under the click / fitting the box instead (prompt_select.py; not with negative points):
        its class score, class, query embedding and query_index; extra['prompt_source'] = "query" | "decoder".
        The chosen masks' borders are snapped to colour edges (thresholds.edge_refine_radius; 0: official) before
        the box cut and the clicked part, so those still bound the answer.
        """
        feats, meta = self._require()
        pts, labels, bxs = validate_prompts(points, point_labels, boxes, meta.ori_shape)
        pos_pts, neg_pts = pts[labels == 1], pts[labels == 0]
        if len(pos_pts) + len(bxs) == 0:
            raise ValueError(f"prompt() needs at least one positive point or a box (got {len(neg_pts)} negative "
                             "point(s) only)")
        with self.timed("prompt_graph"):
            r_boxes = np.concatenate([point_prompt_boxes(pos_pts, meta), original_to_resized_xy(bxs, meta),
                                      point_prompt_boxes(neg_pts, meta)]).astype(np.float32)
            out = self.backend.run_prompt(feats, torch.from_numpy(r_boxes), meta.img_shape)
            sync_device(self.device)
        n_pos = len(pos_pts) + len(bxs)
        with self.timed("postprocess"):
            cls = classify(out.class_embed[0, :n_pos].float(), self._text_embed, self.cfg.logit_scale)
            seg = prompt_postprocess(
                out.mask_logits[0, :n_pos], out.iou_logits[0, :n_pos], meta, self.thresholds, cls_logits=cls,
                class_names=self._names, num_things=self._vocab.num_things, query_feat=out.query_feat[0, :n_pos],
                negative_mask_logits=out.mask_logits[0, n_pos:] if len(neg_pts) else None)
            if len(neg_pts) == 0:
                seg = self._prefer_object_queries(seg, pos_pts, bxs)
            else:
                seg.extra["prompt_source"] = ["decoder"] * n_pos
            seg = refine_prompt_masks(self.edge_refine(seg, exclusive=False), pos_pts, bxs, self.thresholds)
        seg.extra["prompt_kind"] = ["point"] * len(pos_pts) + ["box"] * len(bxs)
        return seg

    def _prefer_object_queries(self, seg: Segments, points: np.ndarray, boxes: np.ndarray) -> Segments:
        """Replace prompt-decoder masks by the object query under the click / fitting the box where
        thresholds.prompt_source says so (see prompt_select.py); extra['prompt_source'] says which per prompt."""
        feats, meta = self._require()
        cls = self._class_logits()
        probs = torch.softmax(cls.float(), dim=-1)[:, :-1]
        q_scores, q_classes = probs.max(-1)
        choice = choose_queries(feats.mask_logits[0], q_scores, meta, points, boxes, seg.masks, seg.scores,
                                self.thresholds)
        seg.extra["prompt_source"] = ["query" if u else "decoder" for u in choice.use_query]
        return replace_with_queries(seg, choice, feats.mask_logits[0], feats.query_feat[0], q_scores, q_classes,
                                    self._names, self._vocab.num_things, meta, self.thresholds)

    # ---- text ----------------------------------------------------------------------------------------------
    def text(self, query: str, max_results: Optional[int] = None, hint_points: Any = None, hint_labels: Any = None,
             hint_boxes: Any = None) -> Segments:
        """Masks for a free-text request, best first (predict/text_request.py: text_query.py scores the queries;
        text_candidates.py cuts their masks at gaps and ranks the pieces by score, mask confidence and the phrase's
        colour word; text_position.py resolves position words).

        query: e.g. "segment the red box" (command words are stripped); max_results: default
        thresholds.text_max_results. Results below thresholds.text_score_thr and empty masks are dropped.
        scores: the phrase scores; extra["rank_scores"]: the ranks that ordered them.
        Position words ("the left mug", "the second red box from the right") are resolved geometrically: one
        result, the match at that rank by mask-centroid x, or none when fewer matches are found;
        extra["position"] says what was parsed.
        class_ids are -1 (the phrase is not a vocabulary class), class_names the phrase. Borders are snapped to
        colour edges (thresholds.edge_refine_radius; 0: official).
        Spatial hint ("the red box" + where the user points; predict/text_hint.py): hint_points [P, 2] xy with
        hint_labels [P] (1 "the one here" (default), 0 "not this one") and/or hint_boxes [B, 4] xyxy, original
        pixels, checked like prompts. Candidates are re-ranked by how well they fit the hint (a point inside the
        mask beats a point near it: x exp(-d / thresholds.text_hint_scale_px)); extra["hint"] says which hint was
        used and each result's fit. "this" / "that one" + a hint is answered as the click / box prompt.
        """
        from .text_hint import SpatialHint

        _, meta = self._require()
        hint = SpatialHint.parse(hint_points, hint_labels, hint_boxes, meta.ori_shape)
        name = self.exemplars.find(extract_phrase(query))
        if name is not None:  # a taught name ("segment my mug"): its exemplars answer (predict/exemplar_book.py)
            return self._named(query, name, max_results, hint)
        return text_request(self, query, max_results, hint)

    # ---- internals -----------------------------------------------------------------------------------------
    def edge_refine(self, seg: Segments, exclusive: bool) -> Segments:
        """Mask borders of `seg` snapped to the image's colour edges (edge_refine.py): a partition stays one
        (`exclusive`: panoptic, semantic), other masks are refined one by one. The filter's coefficients are
        computed on the mask grid (one cell = mask stride x original / resized pixels), so the cost follows the
        model's resolution, not the camera's."""
        th = self.thresholds
        if th.edge_refine_radius <= 0 or len(seg) == 0 or self._image is None:
            return seg
        feats, meta = self._require()
        cell = meta.pad_shape[1] / feats.mask_logits.shape[-1] / meta.scale_xy[0]  # camera px per mask cell
        return refine_segments(seg, self._image, th.edge_refine_radius, th.edge_refine_eps,
                               subsample=max(1, round(cell)), exclusive=exclusive)

    def _require(self) -> tuple[ImageFeatures, ImageMeta]:
        if self._features is None or self._meta is None:
            raise RuntimeError("no image: call set_image(rgb_uint8) before a task")
        return self._features, self._meta

    def _class_logits(self) -> torch.Tensor:
        """[Q, C+1] for the cached image and the active vocabulary (computed once per image / vocabulary: the
        cache holds the text embeddings it was made with, so a vocabulary set through another view is seen)."""
        if self._cls_logits is None or self._cls_logits[0] is not self._text_embed:
            with self.timed("classify"):
                self._cls_logits = (self._text_embed, classify(self._features.class_embed[0].float(),
                                                               self._text_embed, self.cfg.logit_scale))
        return self._cls_logits[1]

    def phrase_embedding(self, phrase: str) -> torch.Tensor:
        """[E] template-averaged embedding of one phrase (kept as ONE synonym: no splitting on ',' or '/')."""
        if phrase not in self._phrase_cache:
            with self.text_lock:  # the text tower serves one caller at a time (vocabulary_embeddings)
                self._phrase_cache[phrase] = embed_synonyms(self.text_encoder, [[phrase]])[0, 0].to(self.device)
            while len(self._phrase_cache) > 64:
                self._phrase_cache.popitem(last=False)
        return self._phrase_cache[phrase]

    def region_embed(self, feats: ImageFeatures) -> Optional[torch.Tensor]:
        fn = getattr(self.backend, "region_embed", None)
        if fn is not None:
            return fn(feats, feats.mask_logits[0])
        with torch.inference_mode():
            return self.model.region_embed(feats, feats.mask_logits[0])

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.last_timings[stage] = (time.perf_counter() - t0) * 1e3


def _vocabulary(things: Union[Sequence[str], str, os.PathLike, dict, Vocabulary], stuff: Sequence[str]) -> Vocabulary:
    """A Vocabulary from names (things, stuff), a YAML path / vocabulary name, a dict or a Vocabulary."""
    if isinstance(things, (str, os.PathLike, dict, Vocabulary)):
        if stuff:
            raise ValueError("set_vocabulary: give stuff names only together with a list of thing names")
        return load_vocabulary(things)
    return Vocabulary(tuple(things), tuple(stuff))


__all__ = ["OMGSegPredictor"]
