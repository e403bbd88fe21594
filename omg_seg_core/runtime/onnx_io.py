"""The exported graphs' interface, shared by the exporter and the ONNX Runtime / TensorRT backends.

A *bundle* is one directory holding the graphs of one model at one static input size:

    manifest.json          what was exported (model name, config hash, weights hash, size, max prompts, files)
    image.onnx             "image" graph: image [B,3,Hp,Wp] -> IMAGE_OUTPUTS, B dynamic (IMAGE_BATCH_AXIS: several
                           cameras in one call; TensorRT builds an optimisation profile for it)
                           (or "head": f4,f8,f16,f32 of batch 1 -> same)
    prompt.onnx            prompt graph: features + boxes [1,N,4] + valid [1,N] + image_size [1,2] -> PROMPT_OUTPUTS
    image_fp16.onnx, prompt_fp16.onnx   optional fp16 graphs (fp32 inputs/outputs) for TensorRT 11 strongly typed

Every .onnx file also carries the manifest fields in its metadata_props (`omg_seg.*`), so a single file copied
elsewhere can still be checked against the configured model (`validate_onnx`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from .backend import ImageFeatures, PromptOutputs

# 2: deformable attention grids folded into one linear layer (MSDeformAttn.fold_grid); 3: the image graph has a
# dynamic batch dimension (exports of format 2 are static batch 1: re-exported on demand, engines rebuilt); 4: the
# deformable samples come points-major (ms_deform_attn_core, per_level_sum), a cheaper weighted sum (older formats
# are re-exported on demand, as always when the format differs)
FORMAT = "omg_seg_onnx/4"
OPSET = 17
IMAGE_INPUT = "image"
#: Name of the image graph's dynamic batch dimension (dim 0 of its input and of every output).
IMAGE_BATCH_AXIS = "batch"
HEAD_INPUTS = ("feat_s4", "feat_s8", "feat_s16", "feat_s32")
FEATURE_NAMES = ("mask_features", "memory_s32", "memory_s16", "memory_s8")
IMAGE_OUTPUTS = FEATURE_NAMES + ("mask_logits", "class_embed", "iou_logits", "query_feat")
CLIP_OUTPUT = "clip_feat"
PROMPT_INPUTS = FEATURE_NAMES + ("boxes", "valid", "image_size")
PROMPT_OUTPUTS = ("prompt_mask_logits", "prompt_class_embed", "prompt_iou_logits", "prompt_query_feat")
MIN_SIDE, MAX_SIDE = 64, 4096
# What invalid (padding) prompt rows are filled with: clearly "no mask" and finite in fp16.
INVALID_MASK_LOGIT = -1.0e4


class OnnxMismatchError(ValueError):
    """An ONNX file / bundle was exported for another model, size or format (the message lists the fields)."""


class OnnxCorruptError(ValueError):
    """An ONNX file or bundle manifest cannot be read (truncated, not ONNX, missing)."""


#: ModelConfig fields added after bundles were first exported, with the value every earlier model had: left out of
#: the hash at that value, so a bundle exported before the field existed still matches its unchanged architecture.
LATER_CONFIG_FIELDS: dict[str, Any] = {"num_encoder_levels": 3}


def config_sha256(cfg: ModelConfig) -> str:
    """Stable hash of the architecture (what the graph structure depends on)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in LATER_CONFIG_FIELDS or v != LATER_CONFIG_FIELDS[k]}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def weights_sha256(module: torch.nn.Module) -> str:
    """Hash of every state_dict tensor (name, dtype, shape, bytes): detects an ONNX exported from other weights."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_resolution(cfg: ModelConfig, height: int, width: int) -> tuple[int, int]:
    """Validate a static export size: both sides multiples of cfg.pad_size_divisor, within [64, 4096]."""
    div = cfg.pad_size_divisor
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v % div or not MIN_SIDE <= v <= MAX_SIDE:
            lo = -(-MIN_SIDE // div) * div
            raise ValueError(f"unsupported export resolution {height}x{width} (HxW): each side must be a multiple "
                             f"of {div} between {lo} and {MAX_SIDE}; {name}={v} is not "
                             f"(nearest valid: {max(lo, -(-v // div) * div)})")
    return height, width


def padded_size_for(long_side: int, aspect: float, divisor: int = 32) -> tuple[int, int]:
    """Static (Hp, Wp) for images with aspect w/h resized so the long side is `long_side`, padded to `divisor`."""
    if aspect >= 1:
        h, w = long_side / aspect, long_side
    else:
        h, w = long_side, long_side * aspect
    return int(-(-round(h) // divisor) * divisor), int(-(-round(w) // divisor) * divisor)


@dataclass
class OnnxBundle:
    """A directory of exported graphs (see module docstring). `meta` is the parsed manifest.json."""

    root: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path | str) -> "OnnxBundle":
        root = Path(root)
        path = root / "manifest.json"
        if not path.exists():
            raise OnnxCorruptError(f"{root} is not an export bundle: manifest.json missing (run omg-seg-export)")
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise OnnxCorruptError(f"{path} unreadable: {e}") from e
        if meta.get("format") != FORMAT:
            raise OnnxMismatchError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(root, meta)

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.meta["input_size"]
        return int(h), int(w)

    @property
    def max_prompts(self) -> int:
        return int(self.meta["max_prompts"])

    @property
    def variant(self) -> str:
        """'image' (normalised image in) or 'head' (the four backbone feature maps in; tests / golden parity)."""
        return str(self.meta.get("variant", "image"))

    def path(self, graph: str, fp16: bool = False) -> Path:
        name = self.meta["files"].get(f"{graph}_fp16" if fp16 else graph)
        if name is None:
            hint = " (export with --fp16)" if fp16 else ""
            raise FileNotFoundError(f"bundle {self.root} has no {'fp16 ' if fp16 else ''}{graph} graph{hint}")
        p = self.root / name
        if not p.exists():
            raise FileNotFoundError(f"bundle {self.root}: {p.name} listed in manifest.json but missing")
        return p

    def input_shape(self, graph: str) -> tuple[int, ...]:
        """Static shape of the graph's first input (part of TensorRT engine cache keys)."""
        h, w = self.input_size
        if graph == "prompt":
            return (1, int(self.meta["embed_dim"]), h // 4, w // 4)
        if self.variant == "head":
            return (1, int(self.meta["backbone_channels"][0]), h // 4, w // 4)
        return (1, 3, h, w)

    def pad_image(self, image: torch.Tensor) -> torch.Tensor:
        """Zero-pad [B, 3, h, w] normalised images bottom/right to the static size; larger images are an error.
        B > 1 needs the image graph's dynamic batch (every image variant of this format has it)."""
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[0] < 1:
            raise ValueError(f"image must be [B, 3, H, W], got shape {tuple(image.shape)}")
        if image.shape[0] > 1 and self.variant == "head":
            raise ValueError("the head-only graph takes one image (batch 1)")
        hp, wp = self.input_size
        h, w = int(image.shape[-2]), int(image.shape[-1])
        if h > hp or w > wp:
            raise ValueError(f"image {h}x{w} is larger than this export's static input {hp}x{wp}: resize it to fit "
                             f"(long side {max(hp, wp)}) or export for a larger size")
        return image if (h, w) == (hp, wp) else F.pad(image, (0, wp - w, 0, hp - h))

    def validate(self, cfg: Optional[ModelConfig] = None, weights: Optional[str] = None,
                 input_size: Optional[tuple[int, int]] = None) -> None:
        """Raise OnnxMismatchError if the bundle was made for another config / weights / size."""
        _compare(self.meta, cfg, weights, input_size, str(self.root / "manifest.json"))


def _compare(meta: Mapping[str, Any], cfg: Optional[ModelConfig], weights: Optional[str],
             input_size: Optional[Sequence[int]], where: str) -> None:
    bad = []
    if cfg is not None:
        if meta.get("model") != cfg.name:
            bad.append(f"model {meta.get('model')!r} != configured {cfg.name!r}")
        elif meta.get("config_sha256") != config_sha256(cfg):
            bad.append("architecture config differs from the configured one (config_sha256)")
    if weights is not None and meta.get("weights_sha256") != weights:
        bad.append("exported from other weights (weights_sha256)")
    if input_size is not None and [int(v) for v in meta.get("input_size", [])] != [int(v) for v in input_size]:
        bad.append(f"input size {meta.get('input_size')} != requested {list(input_size)}")
    if int(meta.get("opset", -1)) != OPSET:
        bad.append(f"opset {meta.get('opset')} != {OPSET}")
    if bad:
        raise OnnxMismatchError(f"{where} does not match the configured model: " + "; ".join(bad)
                                + " — re-export with omg-seg-export")


def read_onnx_metadata(path: Path | str) -> dict[str, Any]:
    """The `omg_seg.*` metadata of an .onnx file (weights are not loaded). Raises OnnxCorruptError on bad files."""
    import onnx  # noqa: PLC0415 (heavy)

    path = Path(path)
    if not path.exists():
        raise OnnxCorruptError(f"ONNX file {path} not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 (protobuf DecodeError and friends)
        raise OnnxCorruptError(f"{path} is not a readable ONNX file ({type(e).__name__}: {e})") from e
    try:
        props = {p.key[len("omg_seg."):]: json.loads(p.value) for p in model.metadata_props
                 if p.key.startswith("omg_seg.")}
    except ValueError as e:
        raise OnnxCorruptError(f"{path}: unreadable omg_seg metadata ({e})") from e
    if props.get("format") != FORMAT:
        raise OnnxMismatchError(f"{path} was not exported by omg-seg-export (no {FORMAT} metadata)")
    return props


def validate_onnx(path: Path | str, cfg: Optional[ModelConfig] = None, weights: Optional[str] = None,
                  input_size: Optional[tuple[int, int]] = None, graph: Optional[str] = None) -> dict[str, Any]:
    """Check one .onnx file's embedded metadata against the configured model; returns the metadata."""
    meta = read_onnx_metadata(path)
    if graph is not None and meta.get("graph") != graph:
        raise OnnxMismatchError(f"{path} holds the {meta.get('graph')!r} graph, expected {graph!r}")
    _compare(meta, cfg, weights, input_size, str(path))
    return meta


# ---- feeding and unpacking (torch tensors; ONNX Runtime converts to numpy) ---------------------------------------
def features_from_outputs(outs: Mapping[str, torch.Tensor], input_hw: Optional[tuple[int, int]] = None,
                          names: Sequence[str] = IMAGE_OUTPUTS) -> ImageFeatures:
    """Image-graph outputs by name -> ImageFeatures (clip_feat when the graph has it).

    input_hw: padded size of the caller's image when it was smaller than the static size. mask_logits and
    clip_feat are then cropped to it (/4, /32), so they have the shapes the Backend protocol promises for that
    input and post-processing can use the caller's own padded shape; mask_features / memory keep the static
    size because they are the prompt graph's inputs."""
    mf, m32, m16, m8, ml, ce, iou, qf = (outs[n] for n in names)
    clip = outs.get(CLIP_OUTPUT)
    if input_hw is not None:
        h, w = input_hw
        ml = ml[..., : h // 4, : w // 4]
        clip = clip[..., : h // 32, : w // 32] if clip is not None else None
    return ImageFeatures(mf, [m32, m16, m8], ml, ce, iou, qf, clip)


def make_region_fn(model: Optional[torch.nn.Module]) -> Optional[Callable[[ImageFeatures, torch.Tensor],
                                                                       Optional[torch.Tensor]]]:
    """`region_embed(features, mask_logits)` for graph backends: the CLIP image head (ConvNeXt-L) stays a Python
    step on the model's device, like the text tower; None for models without one."""
    fn = getattr(model, "region_embed", None) if model is not None else None
    if fn is None or not getattr(getattr(model, "backbone", None), "has_region_embed", False):
        return None
    dev = next(model.parameters()).device

    def region_embed(features: ImageFeatures, mask_logits: torch.Tensor) -> Optional[torch.Tensor]:
        if features.clip_feat is None:
            return None
        f = ImageFeatures(features.mask_features, features.memory, features.mask_logits, features.class_embed,
                          features.iou_logits, features.query_feat, features.clip_feat.to(dev))
        with torch.inference_mode():
            out = fn(f, mask_logits.to(dev))
        return None if out is None else out.to(mask_logits.device)

    return region_embed


def split_prompts(boxes: torch.Tensor, max_prompts: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """boxes [P, 4] -> chunks of (boxes [1, N, 4] float32 zero-padded, valid [1, N] bool, n_valid).

    Padding is exact: prompt queries only attend to themselves, so padded rows never change real ones."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [P, 4] xyxy, got shape {tuple(boxes.shape)}")
    boxes = boxes.detach().float().cpu()
    for start in range(0, boxes.shape[0], max_prompts):
        chunk = boxes[start:start + max_prompts]
        n = chunk.shape[0]
        padded = torch.zeros(1, max_prompts, 4)
        padded[0, :n] = chunk
        # padding rows get a valid 1-px box so no NaN/inf appears in their (discarded) computation
        padded[0, n:] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        valid = torch.zeros(1, max_prompts, dtype=torch.bool)
        valid[0, :n] = True
        yield padded, valid, n


def prompt_feeds(features: ImageFeatures, boxes: torch.Tensor, valid: torch.Tensor,
                 image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Inputs of the prompt graph for one chunk (see split_prompts)."""
    h, w = int(image_size[0]), int(image_size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image_size must be positive (h, w), got {image_size!r}")
    m32, m16, m8 = features.memory
    return {"mask_features": features.mask_features, "memory_s32": m32, "memory_s16": m16, "memory_s8": m8,
            "boxes": boxes, "valid": valid, "image_size": torch.tensor([[float(h), float(w)]])}


def prompt_outputs_from(chunks: Sequence[tuple[Mapping[str, torch.Tensor], int]],
                        features: ImageFeatures) -> PromptOutputs:
    """Concatenate the valid rows of every chunk -> PromptOutputs over all P prompts (P = 0 gives empty tensors)."""
    if not chunks:
        mf, ce, qf = features.mask_features, features.class_embed, features.query_feat
        return PromptOutputs(mf.new_zeros((1, 0) + tuple(mf.shape[-2:])), ce.new_zeros((1, 0, ce.shape[-1])),
                             ce.new_zeros((1, 0, 1)), qf.new_zeros((1, 0, qf.shape[-1])))
    parts = [[outs[name][:, :n] for outs, n in chunks] for name in PROMPT_OUTPUTS]
    h4, w4 = features.mask_logits.shape[-2:]  # crop to the caller's padded size (see features_from_outputs)
    parts[0] = [m[..., :h4, :w4] for m in parts[0]]
    return PromptOutputs(*(torch.cat(p, dim=1) for p in parts))


__all__ = ["FORMAT", "OPSET", "IMAGE_INPUT", "IMAGE_BATCH_AXIS", "HEAD_INPUTS", "FEATURE_NAMES", "IMAGE_OUTPUTS", "CLIP_OUTPUT",
           "PROMPT_INPUTS", "PROMPT_OUTPUTS", "OnnxBundle", "OnnxMismatchError", "OnnxCorruptError",
           "config_sha256", "weights_sha256", "check_resolution", "padded_size_for", "read_onnx_metadata",
           "validate_onnx", "features_from_outputs", "make_region_fn", "split_prompts", "prompt_feeds", "prompt_outputs_from"]
