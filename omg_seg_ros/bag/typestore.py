"""ROS 2 message types without a ROS install: the rosbags typestore (Jazzy + vision_msgs + omg_seg_msgs registered
from their .msg text). Messages are built and decoded by the one codec (omg_seg_ros/msgs.py,
`MessageCodec.bags()`); bag files are read and written by bag/io.py.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from omg_seg_core.config import PACKAGE_ROOT


class BagError(RuntimeError):
    """A bag that cannot be opened or has none of the topics asked for (message says which and why)."""


def _msg_dirs() -> list[tuple[str, Path]]:
    """(package, folder of .msg files): the source checkout first, then installed ament share folders."""
    out = [("vision_msgs", PACKAGE_ROOT / "msg" / "third_party" / "vision_msgs" / "msg"),
           ("omg_seg_msgs", PACKAGE_ROOT / "msg" / "msg")]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            out += [(p, Path(prefix) / "share" / p / "msg") for p in ("vision_msgs", "omg_seg_msgs")]
    return out


@functools.lru_cache(maxsize=1)
def typestore():
    """ROS 2 Jazzy typestore with vision_msgs and omg_seg_msgs registered from .msg text (no ROS needed)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for pkg, folder in _msg_dirs():
        for f in sorted(folder.glob("*.msg")) if folder.is_dir() else []:
            name = f"{pkg}/msg/{f.stem}"
            if name not in types:
                types.update(get_types_from_msg(f.read_text(), name))
    missing = [t for t in ("vision_msgs/msg/LabelInfo", "omg_seg_msgs/msg/SegmentArray") if t not in types]
    if missing:
        raise BagError(f"message definitions not found for {missing}; looked in {[str(d) for _, d in _msg_dirs()]}")
    ts.register(types)
    return ts




__all__ = ["BagError", "typestore"]
