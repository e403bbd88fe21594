"""Segments -> ROS messages (the only place besides conversions.py that builds ROS message types).

Formats (see docs/ros.md):
- `omg_seg_msgs/SegmentArray`: one `Segment` per row; mask = mono8 crop of the segment's tight box (255 inside).
- `vision_msgs/Detection2DArray`: things only; `Detection2D.id` = track id as a decimal string ("" when
  untracked); one hypothesis with `class_id` = the class name and `score`; bbox centre/size in pixels.
- semantic label image: mono16 class ids, 65535 = unlabelled; instance image: mono16 track ids, 0 = none.
- `vision_msgs/LabelInfo`: class id -> display name of the active vocabulary.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from omg_seg_core.structures import SEMANTIC_IGNORE, Segments

from .conversions import numpy_to_image


def tight_roi(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a bool mask [H, W], x1/y1 exclusive; (0, 0, 0, 0) when empty.

    Computed from the mask itself (not `Segments.boxes`) so the cropped mask can never lose pixels.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, 0, 0, 0
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def segments_to_msg(seg: Segments, header, task: Optional[str] = None):
    """Segments -> omg_seg_msgs/SegmentArray stamped with `header` (the input image's)."""
    from omg_seg_msgs.msg import Segment, SegmentArray

    out = SegmentArray()
    out.header = header
    h, w = seg.image_size
    out.image_height, out.image_width = int(h), int(w)
    out.task = task if task is not None else (seg.task or "")
    items = []
    for i in range(len(seg)):
        s = Segment()
        s.id = int(max(0, min(int(seg.track_ids[i]), 2**32 - 1)))
        s.class_id = int(seg.class_ids[i])
        s.class_name = str(seg.class_names[i])
        s.score = float(seg.scores[i]) if np.isfinite(seg.scores[i]) else 0.0
        s.is_thing = bool(seg.is_thing[i])
        x0, y0, x1, y1 = tight_roi(seg.masks[i])
        s.roi.x_offset, s.roi.y_offset = x0, y0
        s.roi.width, s.roi.height = x1 - x0, y1 - y0
        crop = seg.masks[i, y0:y1, x0:x1].astype(np.uint8) * np.uint8(255)
        s.mask = numpy_to_image(crop, "mono8", header)
        items.append(s)
    out.segments = items
    return out


def msg_to_masks(msg) -> np.ndarray:
    """Inverse of the mask encoding: SegmentArray -> bool [N, H, W] full-frame masks (tools and tests)."""
    from .conversions import image_to_numpy

    h, w = int(msg.image_height), int(msg.image_width)
    out = np.zeros((len(msg.segments), h, w), bool)
    for i, s in enumerate(msg.segments):
        if s.roi.width == 0 or s.roi.height == 0:
            continue
        crop = image_to_numpy(s.mask) > 0
        y0, x0 = int(s.roi.y_offset), int(s.roi.x_offset)
        out[i, y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return out


def detections_msg(seg: Segments, header, things_only: bool = True):
    """Segments -> vision_msgs/Detection2DArray (see module docstring)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    out = Detection2DArray()
    out.header = header
    dets = []
    for i in range(len(seg)):
        if things_only and not seg.is_thing[i]:
            continue
        x0, y0, x1, y1 = (float(v) for v in seg.boxes[i])
        if x1 <= x0 or y1 <= y0:
            continue  # empty mask: nothing to locate
        d = Detection2D()
        d.header = header
        d.id = str(int(seg.track_ids[i])) if seg.track_ids[i] > 0 else ""
        d.bbox.center.position.x = (x0 + x1) / 2.0
        d.bbox.center.position.y = (y0 + y1) / 2.0
        d.bbox.size_x = x1 - x0
        d.bbox.size_y = y1 - y0
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = str(seg.class_names[i])
        hyp.hypothesis.score = float(seg.scores[i]) if np.isfinite(seg.scores[i]) else 0.0
        # No 3D pose from a 2D segmenter: put the box centre in the pose (pixels) as other 2D detectors do.
        hyp.pose.pose.position.x = d.bbox.center.position.x
        hyp.pose.pose.position.y = d.bbox.center.position.y
        d.results = [hyp]
        dets.append(d)
    out.detections = dets
    return out


def label_info_msg(class_names: Sequence[str], header, threshold: float = 0.0):
    """Vocabulary -> vision_msgs/LabelInfo (class id = index into the vocabulary; 65535 is unlabelled)."""
    from vision_msgs.msg import LabelInfo, VisionClass

    out = LabelInfo()
    out.header = header
    classes = []
    for i, name in enumerate(class_names[:SEMANTIC_IGNORE]):
        vc = VisionClass()
        vc.class_id = i
        vc.class_name = str(name)
        classes.append(vc)
    unl = VisionClass()
    unl.class_id = SEMANTIC_IGNORE
    unl.class_name = "unlabeled"
    classes.append(unl)
    out.class_map = classes
    out.threshold = float(threshold)
    return out


def semantic_image_msg(seg: Segments, header):
    """mono16 class-id image (65535 = unlabelled)."""
    return numpy_to_image(seg.semantic_map(SEMANTIC_IGNORE), "mono16", header)


def instance_image_msg(seg: Segments, header):
    """mono16 instance image: track ids of things (0 = none; untracked things get 0 too, so every non-zero
    value matches a `Detection2D.id` / `Segment.id`)."""
    ids = np.where(seg.is_thing & (seg.track_ids > 0), seg.track_ids, -1)
    return numpy_to_image(seg.paint(ids, 0), "mono16", header)


def diagnostics_msg(node_name: str, stamp, level: int, message: str, values: dict,
                    hardware_id: str = ""):
    """One DiagnosticStatus ("<node>: pipeline") in a DiagnosticArray."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    st = DiagnosticStatus()
    st.level = bytes([level]) if isinstance(level, int) else level
    st.name = f"{node_name}: pipeline"
    st.message = message
    st.hardware_id = hardware_id
    st.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [st]
    return arr


__all__ = [
    "tight_roi", "segments_to_msg", "msg_to_masks", "detections_msg", "label_info_msg", "semantic_image_msg",
    "instance_image_msg", "diagnostics_msg",
]
