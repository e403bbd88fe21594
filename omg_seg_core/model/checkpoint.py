"""Checkpoint loading and saving: the official OMG-Seg head, open_clip backbone weights, and our own format.

Key mapping (official `Mask2formerVideo` state_dict -> ours; everything else is identical, see the manifest
`omg_seg_convl_head_manifest.json` and the test `test_checkpoint_manifest.py`):

    panoptic_head.pixel_decoder.*  -> pixel_decoder.*
    panoptic_head.*  (the rest)    -> head.*        (transformer_decoder, query_embed, query_feat, level_embed,
                                                     mask_embed, iou_embed, cls_proj, mask_pooling_proj,
                                                     mask_tokens, pb_embedding, pos_linear)
    backbone.*                     -> backbone.*     (open_clip names -> backbone names: backbones/clip_convnext.py)

The official checkpoint `omg_seg_convl.pth` holds only the head (flat or under 'state_dict'). Its non-persistent
`cls_embed` / `logit_scale` are not in it (text embeddings are computed from the vocabulary). Models built without
`enable_box_query` lack the 4 prompt tensors (mask_tokens, pb_embedding, pos_linear.weight/bias): they load
with a warning and prompts are then unusable (`meta['missing_prompt_keys']`).

Our format: torch.save({"format": "omg_seg_ros/1", "config": ModelConfig.to_dict(), "model": state_dict (fp16
allowed), "vocabulary": {"things": [...], "stuff": [...]}, "meta": {...}}).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from ..config import ModelConfig, default_checkpoint_path, get_model_config
from .omg_seg import OMGSeg, build_model
from .state_dict import CheckpointError, check_state_dict, torch_load, unwrap_state_dict

FORMAT = "omg_seg_ros/1"
OFFICIAL_PREFIXES = (("panoptic_head.pixel_decoder.", "pixel_decoder."), ("panoptic_head.", "head."))
PROMPT_KEYS = ("head.mask_tokens.weight", "head.pb_embedding.weight", "head.pos_linear.weight", "head.pos_linear.bias")
PathLike = Union[str, Path]



def official_to_ours(key: str) -> str:
    for src, dst in OFFICIAL_PREFIXES:
        if key.startswith(src):
            return dst + key[len(src):]
    return key


def ours_to_official(key: str) -> str:
    for src, dst in OFFICIAL_PREFIXES:
        if key.startswith(dst):
            return src + key[len(dst):]
    return key


def _describe_wrong_file(sd: Mapping[str, Any], path: PathLike) -> Optional[str]:
    keys = list(sd)
    if any(k.startswith("visual.") for k in keys) and any(k.startswith("transformer.") for k in keys):
        return f"{path} looks like an open_clip CLIP weights file: pass it as backbone_weights, not weights"
    if not any(k.startswith(("panoptic_head.", "head.", "pixel_decoder.")) for k in keys):
        return f"{path}: no OMG-Seg head keys (panoptic_head.*): not an OMG-Seg checkpoint"
    return None


def load_official_head(model: OMGSeg, path: PathLike) -> dict[str, Any]:
    """Load an official `omg_seg_convl.pth` (flat or {'state_dict'}) into model.pixel_decoder / model.head."""

    obj = torch_load(path)
    try:
        sd = unwrap_state_dict(obj, str(path))
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    hint = _describe_wrong_file(sd, path)
    if hint:
        raise CheckpointError(hint)
    sd = {official_to_ours(k): v for k, v in sd.items() if not k.startswith(("backbone.", "data_preprocessor."))}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    allowed = check_state_dict(expected, sd, str(path), optional=PROMPT_KEYS)
    if allowed:
        warnings.warn(f"{path}: no prompt tensors {allowed} (built without enable_box_query): prompts unusable")
    model.load_state_dict(sd, strict=False)
    return {"missing_prompt_keys": allowed}


def save_checkpoint(path: PathLike, model: OMGSeg, vocabulary: Optional[Mapping[str, Any]] = None,
                    meta: Optional[Mapping[str, Any]] = None, half: bool = False,
                    include_backbone: bool = True) -> Path:
    """Write our format. half=True stores floating tensors as fp16 (loaded back as the requested dtype)."""
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()
          if include_backbone or not k.startswith("backbone.")}
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    vocab = {"things": list((vocabulary or {}).get("things", [])), "stuff": list((vocabulary or {}).get("stuff", []))}
    obj = {"format": FORMAT, "config": model.cfg.to_dict(), "model": sd, "vocabulary": vocab,
           "meta": dict(meta or {})}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(p)  # atomic: a crash never leaves a truncated checkpoint under the final name
    return p


def _is_ours(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def _load_ours(obj: dict, path: PathLike, backbone_weights: Optional[PathLike]) -> tuple[OMGSeg, dict]:
    for k in ("config", "model"):
        if k not in obj:
            raise CheckpointError(f"{path}: '{FORMAT}' checkpoint without '{k}'")
    try:
        cfg = ModelConfig.from_dict(obj["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: bad model config: {e}") from e
    sd = obj["model"]
    has_bb = any(k.startswith("backbone.") for k in sd)
    if has_bb:
        with torch.device("meta"):
            model = build_model(cfg)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict(expected, sd, str(path))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                              strict=True, assign=True)
    else:
        model = build_model(cfg, pretrained_backbone=backbone_weights or False)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("backbone.")}
        check_state_dict(expected, sd, str(path))
        model.load_state_dict(sd, strict=False)
    return model, {"format": FORMAT, "vocabulary": obj.get("vocabulary"), "meta": obj.get("meta", {})}


def load_model(name_or_path: Union[str, PathLike, ModelConfig], weights: Optional[PathLike] = None,
               backbone_weights: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[OMGSeg, dict[str, Any]]:
    """Load a ready-to-run model (eval mode) and a meta dict.

    name_or_path: a model name / alias ("omg_seg_convl", "convl", "omg_seg_tiny", "tiny"), a ModelConfig, or a
    path to a checkpoint in our format. weights: head weights for a named model (official `omg_seg_convl.pth`
    or our format); for a name without weights the shipped `models/<name>.pth` is used if present.
    backbone_weights: the open_clip weights file for ConvNeXt-L (also the text tower: meta['text_weights']).
    meta: {"config", "format", "weights", "backbone_weights", "text_weights", "vocabulary", ...}.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32 / float16 / bfloat16, got {dtype}")
    if isinstance(name_or_path, ModelConfig):
        cfg: Optional[ModelConfig] = name_or_path
    else:
        try:
            cfg = get_model_config(str(name_or_path))
        except KeyError:
            cfg = None
            if weights is not None:
                raise ValueError(f"'{name_or_path}' is not a known model name; give weights only with a name")
            weights = name_or_path
            if not Path(weights).is_file():
                raise FileNotFoundError(f"'{name_or_path}' is neither a model name nor a checkpoint file")
    if weights is None and cfg is not None:
        weights = default_checkpoint_path(cfg.name)
        if weights is None:
            raise FileNotFoundError(
                f"no weights for model '{cfg.name}': pass weights=<checkpoint> "
                + ("(official omg_seg_convl.pth) and backbone_weights=<open_clip ConvNeXt-L weights>"
                   if cfg.backbone.startswith("clip_") else f"(models/{cfg.name}.pth is not present)"))
    obj = torch_load(weights)
    meta: dict[str, Any] = {"weights": str(weights), "backbone_weights": None if backbone_weights is None
                            else str(backbone_weights)}
    if _is_ours(obj):
        model, m = _load_ours(obj, weights, backbone_weights)
        if cfg is not None and model.cfg.name != cfg.name:
            raise CheckpointError(f"{weights}: checkpoint is model '{model.cfg.name}', asked for '{cfg.name}'")
        meta.update(m)
    else:
        if cfg is None:
            raise CheckpointError(f"{weights}: not an '{FORMAT}' checkpoint; for the official omg_seg_convl.pth "
                                  "use load_model('omg_seg_convl', weights=..., backbone_weights=...)")
        if cfg.backbone.startswith("clip_") and backbone_weights is None:
            raise FileNotFoundError(f"model '{cfg.name}' needs backbone_weights=<open_clip {cfg.backbone} file> "
                                    "(the official checkpoint holds only the head)")
        model = build_model(cfg, pretrained_backbone=str(backbone_weights) if backbone_weights else False)
        meta.update(load_official_head(model, weights))
        meta.update({"format": "official", "vocabulary": None, "meta": {}})
    meta["config"] = model.cfg
    meta["text_weights"] = meta["backbone_weights"] if model.cfg.text_encoder.startswith("clip_") else None
    model = model.to(device=device, dtype=dtype).eval()
    return model, meta


#: Public-API alias (omg_seg_core.load_checkpoint).
load_checkpoint = load_model

__all__ = ["load_model", "load_checkpoint", "save_checkpoint", "load_official_head", "check_state_dict",
           "official_to_ours", "ours_to_official", "torch_load", "CheckpointError", "FORMAT", "PROMPT_KEYS"]
