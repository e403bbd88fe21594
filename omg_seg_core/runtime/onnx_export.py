"""Export OMG-Seg to ONNX (opset 17): an image graph and a prompt graph per model and static input size.

Graphs (names in onnx_io.py):
- image:  image [B, 3, Hp, Wp] (ImageNet-normalised, letterboxed/zero-padded) -> mask_features, memory_s32/16/8,
  mask_logits [B, Q, Hp/4, Wp/4], class_embed [B, Q, E] (L2-normalised), iou_logits [B, Q, 1], query_feat
  [B, Q, D] (+ clip_feat [B, C32, Hp/32, Wp/32] for backbones with a CLIP head). B is a dynamic axis
  (`IMAGE_BATCH_AXIS`; several cameras in one run), Hp and Wp are static. Per-query class LOGITS are one
  Python step away: `model.classifier.classify(class_embed, text_embed, logit_scale)` (a cosine + max + x100), kept
  outside so the vocabulary can change at run time without re-exporting.
- head (variant for tests / golden parity): the four backbone maps feat_s4..feat_s32 -> the same outputs (batch 1).
- prompt: the image graph's features + boxes [1, N, 4] (xyxy, resized-image px) + valid [1, N] (bool) +
  image_size [1, 2] (h, w of the resized image) -> prompt_mask_logits [1, N, Hp/4, Wp/4], prompt_class_embed,
  prompt_iou_logits, prompt_query_feat. Invalid rows are filled with -1e4 / 0; padding never changes valid rows
  because prompt queries attend only to themselves.

Every graph is checked with `onnx.checker`, optionally simplified with onnxslim, and statically checked against
the ONNX ops TensorRT's parser supports (`trt_supported_ops.txt`). Text towers and post-processing stay in Python.
"""
from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from torch import nn

from .backend import ImageFeatures
from .onnx_io import (CLIP_OUTPUT, FORMAT, HEAD_INPUTS, IMAGE_BATCH_AXIS, IMAGE_INPUT, IMAGE_OUTPUTS,
                      INVALID_MASK_LOGIT, OPSET,
                      PROMPT_INPUTS, PROMPT_OUTPUTS, OnnxBundle, check_resolution, config_sha256, weights_sha256)
from .onnx_passes import attr as _attr
from .onnx_passes import rewrite_for_runtimes, to_fp16_graph

SUPPORTED_OPS_FILE = Path(__file__).with_name("trt_supported_ops.txt")
Progress = Callable[[str], None]


class UnsupportedOpsError(ValueError):
    """The graph uses ONNX ops (or op attributes) outside what TensorRT's ONNX parser supports."""


# ---- graph wrappers (what torch.onnx traces) -------------------------------------------------------------------
def _flat(f: ImageFeatures) -> tuple[torch.Tensor, ...]:
    out = (f.mask_features, *f.memory, f.mask_logits, f.class_embed, f.iou_logits, f.query_feat)
    return out + ((f.clip_feat,) if f.clip_feat is not None else ())


class ImageGraph(nn.Module):
    """image [B, 3, Hp, Wp] -> IMAGE_OUTPUTS (+ clip_feat), each [B, ...]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return _flat(self.model.forward_image(image))


class _GivenFeatures(nn.Module):
    """Stands in for the backbone (like the golden fixture's OmgRefFeatureStub): returns the maps it was given."""

    def __init__(self, real: nn.Module, feats: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.channels = getattr(real, "channels", None)
        self.has_region_embed = getattr(real, "has_region_embed", False)
        self.feats = list(feats)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.feats


class HeadGraph(nn.Module):
    """feat_s4, feat_s8, feat_s16, feat_s32 -> IMAGE_OUTPUTS: the real `forward_image` with the backbone swapped
    for the given maps during the call (so the head graph cannot drift from the image graph)."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.input_size = input_size

    def forward(self, f4: torch.Tensor, f8: torch.Tensor, f16: torch.Tensor, f32: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        real = self.model.backbone
        self.model.backbone = _GivenFeatures(real, [f4, f8, f16, f32])
        try:
            dummy = f4.new_zeros((1, 3) + tuple(self.input_size))  # only its shape is read (size checks)
            return _flat(self.model.forward_image(dummy))[:len(IMAGE_OUTPUTS)]  # clip_feat would be feat_s32
        finally:
            self.model.backbone = real


class PromptGraph(nn.Module):
    """FEATURE_NAMES + boxes [1, N, 4] + valid [1, N] bool + image_size [1, 2] float (h, w) -> PROMPT_OUTPUTS."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mask_features: torch.Tensor, m32: torch.Tensor, m16: torch.Tensor, m8: torch.Tensor,
                boxes: torch.Tensor, valid: torch.Tensor, image_size: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # forward_prompt reads only the memory and the mask features of the cached image features
        feats = ImageFeatures(mask_features, [m32, m16, m8], mask_features, mask_features, mask_features,
                              mask_features)
        out = self.model.forward_prompt(feats, boxes[0], image_size)
        v = valid[:, :, None]
        masks = torch.where(v[..., None], out.mask_logits, torch.full_like(out.mask_logits, INVALID_MASK_LOGIT))
        iou = torch.where(v, out.iou_logits, torch.full_like(out.iou_logits, INVALID_MASK_LOGIT))
        return (masks, torch.where(v, out.class_embed, torch.zeros_like(out.class_embed)), iou,
                torch.where(v, out.query_feat, torch.zeros_like(out.query_feat)))


# ---- static checks -----------------------------------------------------------------------------------------------
def load_supported_ops(path: Path = SUPPORTED_OPS_FILE) -> frozenset[str]:
    """Op names from the data file (one per line, '#' comments)."""
    ops = set()
    for line in Path(path).read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            ops.add(name)
    if not ops:
        raise ValueError(f"{path} lists no operators")
    return frozenset(ops)


def _walk_nodes(graph: Any) -> Iterable[Any]:
    """Every node, including those inside If/Loop/Scan subgraphs."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                yield from _walk_nodes(attr.g)
            for g in attr.graphs:
                yield from _walk_nodes(g)


def graph_ops(model: Any) -> Counter:
    """Counter of 'op_type' (default domain) or 'domain::op_type' over the whole graph."""
    return Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
                   for n in _walk_nodes(model.graph))


def check_trt_ops(model_or_path: Any, supported: Optional[frozenset[str]] = None) -> Counter:
    """Raise UnsupportedOpsError naming every op (and restricted attribute use) TensorRT's parser rejects.
    Returns the op Counter (the list of ops used) when everything is supported."""
    import onnx  # noqa: PLC0415

    model = model_or_path
    if isinstance(model_or_path, (str, Path)):
        model = onnx.load(str(model_or_path), load_external_data=False)
    supported = supported if supported is not None else load_supported_ops()
    ops = graph_ops(model)
    problems = [f"{op} (x{n})" for op, n in sorted(ops.items()) if op not in supported]
    for node in _walk_nodes(model.graph):  # attribute restrictions from the support table
        if node.op_type == "Resize":
            if _attr(node, "mode", "nearest") not in ("nearest", "linear") or _attr(node, "antialias", 0):
                problems.append(f"Resize {node.name}: mode={_attr(node, 'mode', 'nearest')} antialias="
                                f"{_attr(node, 'antialias', 0)} (TensorRT: nearest/linear, no antialias)")
        elif node.op_type == "GridSample" and _attr(node, "mode", "bilinear") not in ("bilinear", "nearest"):
            problems.append(f"GridSample {node.name}: mode={_attr(node, 'mode', 'bilinear')}")
        elif node.op_type == "TopK" and not _attr(node, "sorted", 1):
            problems.append(f"TopK {node.name}: sorted=0 (TensorRT requires sorted=1)")
    if problems:
        raise UnsupportedOpsError("graph uses ops outside TensorRT's ONNX parser support (see "
                                  f"{SUPPORTED_OPS_FILE.name}): " + ", ".join(problems))
    return ops


# ---- export --------------------------------------------------------------------------------------------------
def _finish(path: Path, meta: dict[str, Any], slim: bool, check_ops: bool, progress: Progress) -> Counter:
    """Optional onnxslim -> metadata -> onnx.checker -> TensorRT op check (when check_ops), in place.
    Returns the op Counter."""
    import onnx  # noqa: PLC0415

    model = onnx.load(str(path))
    rewrite_for_runtimes(model)
    if slim:
        import onnxslim  # noqa: PLC0415

        t0 = time.monotonic()
        model = onnxslim.slim(model)
        progress(f"  onnxslim {path.name}: {time.monotonic() - t0:.1f} s")
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {f"omg_seg.{k}": json.dumps(v) for k, v in meta.items()})
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return check_trt_ops(model) if check_ops else graph_ops(model)


def _fold_deformable_grids(model: nn.Module) -> list:
    """Switch the deformable attention layers to their export form (MSDeformAttn.fold_grid); returns them so the
    caller switches them back."""
    from ..model.ms_deform_attn import MSDeformAttn  # noqa: PLC0415

    layers = [m for m in model.modules() if isinstance(m, MSDeformAttn)]
    for m in layers:
        m.fold_grid = True
    return layers


def export_onnx(model: nn.Module, out_dir: Path | str, input_size: tuple[int, int], *, max_prompts: int = 16,
                variant: str = "image", fp16: bool = False, slim: bool = True, check_ops: bool = True,
                progress: Progress = print) -> OnnxBundle:
    """Export `model` (an OMGSeg, eval mode, fp32) for one static padded input size (Hp, Wp) into `out_dir`.

    variant: "image" (image in) or "head" (backbone maps in). fp16: also write *_fp16.onnx (TensorRT 11).
    Safe to re-run: files are rewritten, manifest.json last (a bundle without it is incomplete).
    Raises ValueError for unsupported sizes, UnsupportedOpsError when check_ops finds TensorRT-unsupported ops.
    """
    import onnx  # noqa: PLC0415

    cfg = model.cfg
    h, w = check_resolution(cfg, *input_size)
    if variant not in ("image", "head"):
        raise ValueError(f"variant must be 'image' or 'head', got {variant!r}")
    if not 1 <= max_prompts <= 256:
        raise ValueError(f"max_prompts must be in [1, 256], got {max_prompts}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    model = model.eval().float()
    progress(f"hashing {cfg.name} weights ...")
    base = {"format": FORMAT, "model": cfg.name, "config_sha256": config_sha256(cfg),
            "weights_sha256": weights_sha256(model), "input_size": [h, w], "max_prompts": max_prompts,
            "opset": OPSET, "variant": variant, "embed_dim": cfg.embed_dim,
            "image_batch": "dynamic" if variant == "image" else 1,
            "backbone_channels": list(cfg.backbone_channels)}
    dev = next(model.parameters()).device
    img_axes: Optional[dict[str, dict[int, str]]] = None
    if variant == "head":
        ex = tuple(torch.randn(1, c, h // s, w // s, device=dev) for c, s in zip(cfg.backbone_channels, (4, 8, 16, 32)))
        img_mod, img_in = HeadGraph(model, (h, w)).eval(), list(HEAD_INPUTS)
    else:
        # traced with a batch of 2 and dim 0 declared dynamic: nothing can be specialised to one image
        ex = (torch.randn(2, 3, h, w, device=dev),)
        # wrappers in eval mode: torch.onnx.export restores the wrapper's mode recursively afterwards, and a
        # fresh nn.Module is in training mode (that would leave BatchNorm layers of `model` training)
        img_mod, img_in = ImageGraph(model).eval(), [IMAGE_INPUT]
    # forward_image returns clip_feat exactly when the backbone has a CLIP region head
    has_clip = variant == "image" and bool(getattr(model.backbone, "has_region_embed", False))
    img_out = list(IMAGE_OUTPUTS) + ([CLIP_OUTPUT] if has_clip else [])
    if variant == "image":
        img_axes = {name: {0: IMAGE_BATCH_AXIS} for name in [IMAGE_INPUT] + img_out}
    n, d = max_prompts, cfg.embed_dim
    # prompt-graph example inputs: only shapes matter to the trace (saves a full image forward per export)
    feats_ex = [torch.randn(1, d, h // s, w // s, device=dev) for s in (4, 32, 16, 8)]
    boxes = torch.tensor([[w * 0.1, h * 0.1, w * 0.6, h * 0.7]], device=dev).repeat(n, 1)[None]
    prompt_ex = (*feats_ex, boxes, torch.ones(1, n, dtype=torch.bool, device=dev),
                 torch.tensor([[float(h), float(w)]], device=dev))
    files: dict[str, str] = {}
    op_lists: dict[str, dict[str, int]] = {}
    folded = _fold_deformable_grids(model)
    for graph, mod, args, ins, outs, axes in (("image", img_mod, ex, img_in, img_out, img_axes),
                                              ("prompt", PromptGraph(model).eval(), prompt_ex, list(PROMPT_INPUTS),
                                               list(PROMPT_OUTPUTS), None)):
        path = out / f"{graph}.onnx"
        t0 = time.monotonic()
        progress(f"exporting {graph} graph of {cfg.name} at {h}x{w} (opset {OPSET}) -> {path}")
        with torch.no_grad(), warnings.catch_warnings():
            # expected: tracer notes about Python ints (static shapes are the point) and the legacy-exporter notice
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            torch.onnx.export(mod, args, str(path), input_names=ins, output_names=outs, opset_version=OPSET,
                              dynamo=False, do_constant_folding=True, dynamic_axes=axes)
        meta = dict(base, graph=graph, dtype="float32")
        ops = _finish(path, meta, slim, check_ops, progress)
        files[graph] = path.name
        op_lists[graph] = dict(sorted(ops.items()))
        progress(f"  {graph}.onnx: {path.stat().st_size / 1e6:.1f} MB, {sum(ops.values())} nodes, "
                 f"{time.monotonic() - t0:.1f} s")
        if fp16:
            p16 = out / f"{graph}_fp16.onnx"
            onnx.save(to_fp16_graph(onnx.load(str(path))), str(p16))
            _finish(p16, dict(base, graph=graph, dtype="float16"), False, check_ops, progress)
            files[f"{graph}_fp16"] = p16.name
            progress(f"  {p16.name}: {p16.stat().st_size / 1e6:.1f} MB")
    for m in folded:
        m.fold_grid = False
    model.eval()
    manifest = dict(base, files=files, ops=op_lists, image_outputs=img_out,
                    exported=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), torch=torch.__version__,
                    onnx=onnx.__version__)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return OnnxBundle.load(out)


__all__ = ["export_onnx", "ImageGraph", "HeadGraph", "PromptGraph", "check_trt_ops", "graph_ops",
           "load_supported_ops", "UnsupportedOpsError", "SUPPORTED_OPS_FILE"]
