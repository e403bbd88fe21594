"""OMG-Seg assembled: backbone -> pixel decoder -> head; the image graph / prompt graph split of runtime/backend.py.

`build_model(cfg)` is parameterised entirely by `ModelConfig` (CONVL = the released ConvNeXt-L model, TINY = the
small shipped model). No device is hard-coded: move the model with `.to(device, dtype)`; every internal constant
(position encodings, reference points) is created on the input's device and cast to its dtype.

Image convention: `image` float [B, 3, Hp, Wp], ImageNet-normalised RGB, zero-padded bottom/right so Hp, Wp are
multiples of 32. Masks come out at stride 4 ([.., Hp/4, Wp/4]); boxes are xyxy in resized-image pixels.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ..config import ModelConfig
from ..runtime.backend import ImageFeatures, PromptOutputs
from .backbones.base import build_backbone
from .decoder_head import HeadOutputs, OMGSegHead
from .pixel_decoder import MSDeformAttnPixelDecoder
from .prompt_encoder import ImageSize


def build_pixel_decoder(cfg: ModelConfig) -> MSDeformAttnPixelDecoder:
    """The pixel decoder of `cfg` alone (tests and tools that start from backbone features)."""
    return MSDeformAttnPixelDecoder(
        cfg.backbone_channels, dim=cfg.embed_dim, num_layers=cfg.num_encoder_layers, heads=cfg.num_heads,
        points=cfg.encoder_num_points, ffn_dim=cfg.encoder_ffn_dim, num_levels=cfg.num_encoder_levels,
        num_outs=cfg.num_feature_levels, gn_groups=cfg.gn_groups)


class OMGSeg(nn.Module):
    """`.backbone`, `.pixel_decoder`, `.head` (decoder + heads + prompt queries), `.cfg`."""

    def __init__(self, cfg: ModelConfig, backbone: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.pixel_decoder = build_pixel_decoder(cfg)
        self.head = OMGSegHead(cfg)
        # The small model classifies with MiniLM + a LEARNED projection (text/sentence_text.py); the projection is
        # part of the model so its weights travel in our checkpoints (keys text_projection.*).
        if cfg.text_encoder == "minilm_l6":
            from ..text.sentence_text import TextProjection

            self.text_projection = TextProjection(cfg.class_embed_dim)

    # ---- pieces ----------------------------------------------------------------------------------------------
    def _check_image(self, image: torch.Tensor) -> None:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, H, W], got shape {tuple(image.shape)}")
        div = self.cfg.pad_size_divisor
        if image.shape[-2] % div or image.shape[-1] % div:
            raise ValueError(f"image size {tuple(image.shape[-2:])} must be a multiple of {div} (pad bottom/right)")

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """image [B, 3, Hp, Wp] -> (backbone feats [f4..f32], mask_features [B, D, Hp/4, Wp/4], memory [m32, m16, m8])."""
        self._check_image(image)
        feats = self.backbone(image)
        mask_features, memory = self.pixel_decoder(feats)
        return list(feats), mask_features, memory

    def forward_train(self, image: torch.Tensor, boxes: Optional[torch.Tensor] = None,
                      image_size: Optional[ImageSize] = None, **kw) -> HeadOutputs:
        """Training forward (batch B >= 1): all predictions of every layer. With `boxes` [B, P, 4] (xyxy, resized-
        image px) and `image_size` ((h, w) or [B, 2]) the prompt queries replace the learned ones."""
        _, mask_features, memory = self.encode(image)
        if boxes is not None:
            if image_size is None:
                raise ValueError("forward_train: boxes given without image_size")
            return self.head.forward_prompts(mask_features, memory, boxes, image_size, **kw)
        return self.head(mask_features, memory, **kw)

    # ---- the two inference graphs ----------------------------------------------------------------------------
    def forward_image(self, image: torch.Tensor) -> ImageFeatures:
        """Image graph: image [1, 3, Hp, Wp] -> ImageFeatures (last-layer predictions of the learned queries)."""
        feats, mask_features, memory = self.encode(image)
        out = self.head(mask_features, memory, all_layers=False)
        clip_feat = feats[-1] if getattr(self.backbone, "has_region_embed", False) else None
        return ImageFeatures(mask_features=mask_features, memory=list(memory), mask_logits=out.mask_logits[-1],
                             class_embed=out.class_embed[-1], iou_logits=out.iou_logits[-1],
                             query_feat=out.query_feat_norm, clip_feat=clip_feat)

    def forward_prompt(self, features: ImageFeatures, boxes: torch.Tensor, image_size: ImageSize) -> PromptOutputs:
        """Prompt graph: boxes [P, 4] xyxy in resized-image px (points as (x-3, y-3, x+3, y+3)), image_size = (h, w)
        of the resized image -> PromptOutputs (last layer, one query per prompt)."""
        if boxes.dim() != 2 or boxes.shape[-1] != 4 or boxes.shape[0] == 0:
            raise ValueError(f"boxes must be [P, 4] xyxy with P >= 1, got shape {tuple(boxes.shape)}")
        out = self.head.forward_prompts(features.mask_features, features.memory, boxes[None], image_size,
                                        all_layers=False)
        return PromptOutputs(mask_logits=out.mask_logits[-1], class_embed=out.class_embed[-1],
                             iou_logits=out.iou_logits[-1], query_feat=out.query_feat_norm)

    def forward(self, image: torch.Tensor) -> ImageFeatures:
        return self.forward_image(image)

    def region_embed(self, features: ImageFeatures, mask_logits: torch.Tensor) -> Optional[torch.Tensor]:
        """CLIP region embeddings [N, E] for mask_logits [N, h, w] (any resolution), or None without a CLIP head."""
        fn = getattr(self.backbone, "region_embed", None)
        if features.clip_feat is None or fn is None:
            return None
        return fn(features.clip_feat, mask_logits)


def build_model(cfg: ModelConfig, pretrained_backbone: Union[bool, str] = False,
                backbone: Optional[nn.Module] = None) -> OMGSeg:
    """Build OMG-Seg for `cfg` in eval mode on the CPU (fp32).

    pretrained_backbone: passed to the backbone factory (efficientnet_lite0: True = packaged ImageNet weights;
    clip_convnext_large_d_320: a path to an open_clip weights file). `backbone` overrides the registry (any
    nn.Module returning [f4, f8, f16, f32] with `channels == cfg.backbone_channels`).
    """
    if backbone is None:
        backbone = build_backbone(cfg.backbone, pretrained=pretrained_backbone,
                                  expected_channels=cfg.backbone_channels)
    elif tuple(getattr(backbone, "channels", ())) != tuple(cfg.backbone_channels):
        raise ValueError(f"backbone channels {getattr(backbone, 'channels', None)} != config "
                         f"{tuple(cfg.backbone_channels)}")
    return OMGSeg(cfg, backbone).eval()


def head_state_dict(model: OMGSeg) -> dict[str, torch.Tensor]:
    """The non-backbone part (pixel decoder + head), our key names."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}


__all__ = ["OMGSeg", "build_model", "build_pixel_decoder", "head_state_dict"]
