"""PyTorch backend: runs the model's two graphs (`forward_image`, `forward_prompt`) eagerly, any input size."""
from __future__ import annotations

import gc
from typing import Optional, Union

import torch
from torch import nn

from .backend import ImageFeatures, PromptOutputs

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    """"float32" / "fp16" / torch.float16 ... -> torch.dtype; anything else -> ValueError naming it."""
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
    elif isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(set(_DTYPES))}")


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    """Validate a device string; "cuda" without a GPU -> ValueError naming it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"invalid device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


class TorchBackend:
    """`Backend` for an `OMGSeg` module. The model is moved to `device` / `dtype` and put in eval mode.

    compile=True wraps the two graphs with torch.compile (first calls are slow; shapes vary per image size).
    fp16 on CPU is allowed but slow: CPU kernels for half precision are mostly reference implementations.
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: Union[str, torch.device] = "cpu",
                 dtype: Union[str, torch.dtype] = torch.float32, compile: bool = False) -> None:
        self.device_obj = resolve_device(device)
        self.device = str(self.device_obj)
        self.dtype = resolve_dtype(dtype)
        self.model: Optional[nn.Module] = model.to(device=self.device_obj, dtype=self.dtype).eval()
        self._image_fn = self.model.forward_image
        self._prompt_fn = self.model.forward_prompt
        if compile:
            self._image_fn = torch.compile(self._image_fn, dynamic=True)
            self._prompt_fn = torch.compile(self._prompt_fn, dynamic=True)

    def _require(self) -> nn.Module:
        if self.model is None:
            raise RuntimeError("TorchBackend was released; create a new one")
        return self.model

    def run_image(self, image: torch.Tensor) -> ImageFeatures:
        """image float [B, 3, Hp, Wp] (ImageNet-normalised, padded) -> ImageFeatures of batch B on this backend's
        device (the model is batch-agnostic: one call for several cameras)."""
        self._require()
        with torch.inference_mode():
            return self._image_fn(image.to(device=self.device_obj, dtype=self.dtype))

    def run_prompt(self, features: ImageFeatures, boxes: torch.Tensor, image_size: tuple[int, int]) -> PromptOutputs:
        """boxes float32 [P, 4] xyxy in resized-image px; image_size (h, w) of the resized image."""
        self._require()
        with torch.inference_mode():
            return self._prompt_fn(features, boxes.to(device=self.device_obj, dtype=self.dtype), image_size)

    def region_embed(self, features: ImageFeatures, mask_logits: torch.Tensor) -> Optional[torch.Tensor]:
        """CLIP region embeddings [N, E] for mask_logits [N, h, w], or None when the model has no CLIP head."""
        model = self._require()
        fn = getattr(model, "region_embed", None)
        if fn is None or features.clip_feat is None:
            return None
        with torch.inference_mode():
            return fn(features, mask_logits.to(device=self.device_obj, dtype=self.dtype))

    def release(self) -> None:
        """Drop the model and free cached device memory (node deactivate)."""
        self.model = None
        self._image_fn = self._prompt_fn = None  # type: ignore[assignment]
        gc.collect()
        if self.device_obj.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["TorchBackend", "resolve_dtype", "resolve_device"]
