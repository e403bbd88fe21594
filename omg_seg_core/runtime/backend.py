"""The runtime interface: what every backend (PyTorch, ONNX Runtime, TensorRT) computes.

The network is split in two graphs so prompts are cheap (SamPredictor style):

- image graph: normalised, padded image [1, 3, Hp, Wp] -> `ImageFeatures` (multi-scale memory, mask features,
  the learned queries' predictions). Runs once per frame in `set_image`.
- prompt graph: cached `ImageFeatures` + up to P prompt boxes -> `PromptOutputs`. Runs per prompt call.

Text towers, vocabulary handling and all post-processing stay in Python, outside the graphs: class logits are
computed from the graph's L2-normalised query class embeddings against the current text embeddings
(`omg_seg_core.model.classifier.classify`), so the vocabulary can change without re-exporting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import torch


@dataclass
class ImageFeatures:
    """Outputs of the image graph for B padded images of size (Hp, Wp) (B = 1 for what the predictor caches per
    image; a batched call gives B > 1, `unbatch` splits it). Stride-4 size (h4, w4) = (Hp/4, Wp/4).

    mask_features:  [B, D, h4, w4]   pixel-decoder mask features (stride 4)
    memory:         list of 3 tensors [B, D, Hp/s, Wp/s] for s = 32, 16, 8 (pixel-decoder encoder outputs)
    mask_logits:    [B, Q, h4, w4]   last-layer mask logits of the learned queries
    class_embed:    [B, Q, E]        last-layer L2-normalised class embeddings (cosine against text embeddings)
    iou_logits:     [B, Q, 1]        last-layer objectness logits
    query_feat:     [B, Q, D]        last-layer query features after post_norm (tracking / MinVIS embedding)
    clip_feat:      [B, C4, Hp/32, Wp/32] stride-32 backbone features for CLIP region embeddings, or None
    """

    mask_features: torch.Tensor
    memory: list[torch.Tensor]
    mask_logits: torch.Tensor
    class_embed: torch.Tensor
    iou_logits: torch.Tensor
    query_feat: torch.Tensor
    clip_feat: Optional[torch.Tensor] = None

    def unbatch(self) -> list["ImageFeatures"]:
        """One ImageFeatures of batch 1 per image of this batch (slices: views of these tensors, no copy)."""
        def one(t: torch.Tensor, i: int) -> torch.Tensor:
            return t[i:i + 1]

        return [ImageFeatures(one(self.mask_features, i), [one(m, i) for m in self.memory], one(self.mask_logits, i),
                              one(self.class_embed, i), one(self.iou_logits, i), one(self.query_feat, i),
                              None if self.clip_feat is None else one(self.clip_feat, i))
                for i in range(int(self.mask_logits.shape[0]))]


@dataclass
class PromptOutputs:
    """Outputs of the prompt graph for P prompts (last decoder layer).

    mask_logits: [1, P, h4, w4]; class_embed: [1, P, E]; iou_logits: [1, P, 1]; query_feat: [1, P, D]
    """

    mask_logits: torch.Tensor
    class_embed: torch.Tensor
    iou_logits: torch.Tensor
    query_feat: torch.Tensor


@runtime_checkable
class Backend(Protocol):
    """A runtime that executes the two graphs of one model at one static input size (TensorRT/ONNX) or any size
    (PyTorch). Implementations: torch_backend.TorchBackend, ort_backend.OrtBackend, trt_backend.TrtBackend."""

    name: str              # "torch" | "onnxruntime" | "tensorrt"
    device: str            # "cpu" | "cuda:0" ...
    # optional `max_batch: int`: the most images one run_image call takes (TensorRT: its engine's profile);
    # callers split larger batches (predict/batch.py). Absent or None: any batch.

    def run_image(self, image: torch.Tensor) -> ImageFeatures:
        """image: float [B, 3, Hp, Wp], ImageNet-normalised RGB, zero-padded bottom/right to the pad divisor; B >= 1
        images in ONE call (several cameras, predict/batch.py) -> ImageFeatures of batch B; image i's outputs
        equal those of a call with image i alone up to the kernels' float rounding (test/core/runtime)."""
        ...

    def run_prompt(self, features: ImageFeatures, boxes: torch.Tensor, image_size: tuple[int, int]) -> PromptOutputs:
        """boxes: float32 [P, 4] xyxy in RESIZED-image pixels (img_shape, not padded); image_size = (h, w) of the
        resized image (what the official code divides boxes by). A point prompt is the box (x-3, y-3, x+3, y+3)."""
        ...

    def release(self) -> None:
        """Free device memory (node deactivate)."""
        ...
