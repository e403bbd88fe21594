"""Reading state_dicts from files, with errors that name the file and every bad key (used by checkpoint loading
and by the open_clip backbone alike)."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, Mapping, Union

import torch

PathLike = Union[str, Path]


class CheckpointError(ValueError):
    """A checkpoint file that is unreadable or whose keys / shapes do not fit the model (message names them)."""


def torch_load(path: PathLike) -> Any:
    """torch.load on CPU with clear errors. Tries weights_only=True; a pickle with other objects (mmengine
    checkpoints store meta objects) is retried with weights_only=False and a warning, because the user named it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for garbage (IndexError, RuntimeError, ...)
        if not (isinstance(e, pickle.UnpicklingError) and "Unsupported global" in str(e)):
            raise CheckpointError(f"{p}: not a readable PyTorch checkpoint (wrong or truncated file?): "
                                  f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    warnings.warn(f"{p}: contains non-tensor Python objects; loading it with weights_only=False (trusted file)")
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint: {e}") from e


def check_state_dict(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, torch.Tensor], source: str,
                     optional: tuple[str, ...] = ()) -> list[str]:
    """Compare key sets and shapes. Raises CheckpointError naming EVERY missing, unexpected and mis-shaped key;
    returns the missing keys that were allowed (`optional`)."""
    missing = [k for k in expected if k not in got]
    allowed = [k for k in missing if k in optional]
    missing = [k for k in missing if k not in optional]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k}: file {tuple(got[k].shape)} vs model {tuple(expected[k])}"
              for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k])]
    if missing or unexpected or shapes:
        parts = [f"{source}: state_dict does not match the model"]
        if missing:
            parts.append(f"missing {len(missing)} key(s): {missing}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {unexpected}")
        if shapes:
            parts.append(f"mis-shaped {len(shapes)} key(s): {shapes}")
        raise CheckpointError("\n".join(parts))
    return allowed


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Accept a flat state_dict or {'state_dict': ...} / {'model': ...}; strip a DistributedDataParallel 'module.'."""
    if isinstance(obj, dict):
        for k in ("state_dict", "model"):
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source}: expected a state_dict of tensors (flat or under 'state_dict'), "
                         f"got {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


__all__ = ["CheckpointError", "torch_load", "check_state_dict", "unwrap_state_dict"]
