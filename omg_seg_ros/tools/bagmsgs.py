"""ROS 2 messages without a ROS install: the rosbags typestore (Jazzy + vision_msgs + omg_seg_msgs registered
from their .msg text) and message <-> numpy conversions (images, label images, SegmentArray, Detection2DArray,
LabelInfo, recorded prompts). Bag files themselves are read and written by `bagio`.

Conventions: label images are sensor_msgs/Image mono16 (class index, 65535 = void; or instance id, 0 = none);
boxes xyxy in pixels; stamps are int nanoseconds.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from omg_seg_core.config import PACKAGE_ROOT
from omg_seg_core.structures import Segments, masks_to_boxes


class BagError(RuntimeError):
    """A bag that cannot be opened or has none of the topics asked for (message says which and why)."""


class DecodeError(ValueError):
    """One message that cannot be turned into an array; `reason` is the short key counted in reports."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


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


def T(name: str) -> Any:
    """Message class by short name, e.g. T('sensor_msgs/msg/Image')."""
    return typestore().types[name]


# ---------------------------------------------------------------------------------------------- conversions
def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def make_header(stamp: int, frame_id: str = "camera") -> Any:
    Time = T("builtin_interfaces/msg/Time")
    return T("std_msgs/msg/Header")(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000),
                                    frame_id=frame_id)


def _pixels(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    """Rows of an Image honouring `step` (rows may be padded) and `is_bigendian`."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    data = np.asarray(msg.data, np.uint8)
    if step < w * channels * itemsize or data.size < h * step:
        raise DecodeError("truncated image data", f"{data.size} bytes for {h}x{w} step {step}")
    rows = data[: h * step].reshape(h, step)[:, : w * channels * itemsize]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(dt).reshape(h, w, channels) if channels > 1 else \
        np.ascontiguousarray(rows).view(dt).reshape(h, w)
    return arr.astype(np.dtype(dtype).newbyteorder("="))


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage (jpeg/png) -> uint8 [H, W, 3]."""
    if getattr(msg, "__msgtype__", "") == "sensor_msgs/msg/CompressedImage":
        import cv2

        bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DecodeError("undecodable compressed image", f"format {msg.format!r}")
        return bgr[:, :, ::-1].copy()
    enc = msg.encoding.lower()
    if enc in ("rgb8", "bgr8"):
        px = _pixels(msg, np.uint8, 3)
        return px if enc == "rgb8" else px[:, :, ::-1].copy()
    if enc in ("rgba8", "bgra8"):
        px = _pixels(msg, np.uint8, 4)[:, :, :3]
        return px.copy() if enc == "rgba8" else px[:, :, ::-1].copy()
    if enc in ("mono8", "8uc1"):
        return np.repeat(_pixels(msg, np.uint8, 1)[:, :, None], 3, axis=2)
    raise DecodeError("unknown image encoding", repr(msg.encoding))


def label_to_array(msg: Any) -> np.ndarray:
    """Label image (mono16 / 16UC1, or mono8 / 8UC1 whose 255 is read as unlabelled) -> uint16 [H, W]."""
    enc = msg.encoding.lower()
    if enc in ("mono16", "16uc1"):
        return _pixels(msg, np.uint16, 1)
    if enc in ("mono8", "8uc1"):
        a = _pixels(msg, np.uint8, 1).astype(np.uint16)
        a[a == 255] = 65535  # top value means unlabelled in both widths (ros_conventions.md)
        return a
    raise DecodeError("unknown label encoding", repr(msg.encoding))


def image_msg(rgb: np.ndarray, stamp: int, frame_id: str = "camera") -> Any:
    rgb = np.ascontiguousarray(rgb, np.uint8)
    h, w = rgb.shape[:2]
    return T("sensor_msgs/msg/Image")(header=make_header(stamp, frame_id), height=h, width=w, encoding="rgb8",
                                      is_bigendian=0, step=w * 3, data=rgb.reshape(-1))


def compressed_msg(rgb: np.ndarray, stamp: int, frame_id: str = "camera", fmt: str = "jpeg") -> Any:
    import cv2

    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f"cv2 could not encode a {rgb.shape} image as {fmt}")
    return T("sensor_msgs/msg/CompressedImage")(header=make_header(stamp, frame_id), format=fmt,
                                                data=buf.reshape(-1))


def label_msg(labels: np.ndarray, stamp: int, frame_id: str = "camera") -> Any:
    """uint16 [H, W] -> mono16 Image (little endian, lossless)."""
    a = np.ascontiguousarray(labels, "<u2")
    h, w = a.shape
    return T("sensor_msgs/msg/Image")(header=make_header(stamp, frame_id), height=h, width=w, encoding="mono16",
                                      is_bigendian=0, step=w * 2, data=a.view(np.uint8).reshape(-1))


def label_info_msg(class_names: Sequence[str], stamp: int, frame_id: str = "camera") -> Any:
    VC = T("vision_msgs/msg/VisionClass")
    return T("vision_msgs/msg/LabelInfo")(header=make_header(stamp, frame_id), threshold=0.0,
                                          class_map=[VC(class_id=i, class_name=n) for i, n in enumerate(class_names)])


def label_info_names(msg: Any) -> dict[int, str]:
    return {int(c.class_id): str(c.class_name) for c in msg.class_map}


def segment_array_msg(segments: Segments, stamp: int, frame_id: str = "camera") -> Any:
    """Segments -> omg_seg_msgs/SegmentArray (bbox-cropped mono8 masks, see msg/msg/Segment.msg)."""
    Seg, ROI = T("omg_seg_msgs/msg/Segment"), T("sensor_msgs/msg/RegionOfInterest")
    h, w = segments.image_size
    out = []
    boxes = masks_to_boxes(segments.masks)  # tight boxes of the masks themselves (the msg's roi contract)
    for i in range(len(segments)):
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        crop = (segments.masks[i, y0:y1, x0:x1].astype(np.uint8) * 255)
        hdr = make_header(stamp, frame_id)
        mask = T("sensor_msgs/msg/Image")(header=hdr, height=y1 - y0, width=x1 - x0, encoding="mono8",
                                          is_bigendian=0, step=x1 - x0, data=np.ascontiguousarray(crop).reshape(-1))
        tid = int(segments.track_ids[i]) if segments.track_ids[i] > 0 else 0
        out.append(Seg(id=tid, class_id=int(segments.class_ids[i]), class_name=segments.class_names[i],
                       score=float(segments.scores[i]), is_thing=bool(segments.is_thing[i]),
                       roi=ROI(x_offset=x0, y_offset=y0, height=y1 - y0, width=x1 - x0, do_rectify=False),
                       mask=mask))
    return T("omg_seg_msgs/msg/SegmentArray")(header=make_header(stamp, frame_id), image_height=h, image_width=w,
                                              task=segments.task, segments=out)


def segment_array_to_segments(msg: Any) -> Segments:
    """omg_seg_msgs/SegmentArray -> Segments at full image size (track ids from Segment.id)."""
    h, w = int(msg.image_height), int(msg.image_width)
    n = len(msg.segments)
    masks = np.zeros((n, h, w), bool)
    for i, s in enumerate(msg.segments):
        r = s.roi
        if r.width and r.height:
            if r.x_offset + r.width > w or r.y_offset + r.height > h:
                raise DecodeError("segment outside the image", f"roi {r.x_offset},{r.y_offset} {r.width}x{r.height} "
                                                               f"in {w}x{h}")
            crop = _pixels(s.mask, np.uint8, 1)
            if crop.shape != (r.height, r.width):
                raise DecodeError("segment mask size differs from roi", f"{crop.shape} vs {(r.height, r.width)}")
            masks[i, r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = crop > 0
    return Segments(masks, [s.score for s in msg.segments], [s.class_id for s in msg.segments],
                    [s.class_name for s in msg.segments], [s.is_thing for s in msg.segments],
                    track_ids=[s.id for s in msg.segments], task=msg.task)


def detections_msg(segments: Segments, stamp: int, frame_id: str = "camera") -> Any:
    """Segments -> vision_msgs/Detection2DArray as the node publishes it (omg_seg_ros/messages.py): id = track id
    ("" when untracked), one hypothesis (class name, score), pose position = box centre, empty masks left out."""
    D, BB, P2, PT = (T(f"vision_msgs/msg/{n}") for n in ("Detection2D", "BoundingBox2D", "Pose2D", "Point2D"))
    H, OH = T("vision_msgs/msg/ObjectHypothesisWithPose"), T("vision_msgs/msg/ObjectHypothesis")
    dets = []
    for i in range(len(segments)):
        x0, y0, x1, y1 = (float(v) for v in segments.boxes[i])
        if x1 <= x0 or y1 <= y0:
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        tid = int(segments.track_ids[i])
        hyp = H(hypothesis=OH(class_id=segments.class_names[i], score=float(segments.scores[i])),
                pose=_pose_at(cx, cy))
        dets.append(D(header=make_header(stamp, frame_id), results=[hyp], id=str(tid) if tid > 0 else "",
                      bbox=BB(center=P2(position=PT(x=cx, y=cy), theta=0.0), size_x=x1 - x0, size_y=y1 - y0)))
    return T("vision_msgs/msg/Detection2DArray")(header=make_header(stamp, frame_id), detections=dets)


def instance_ids_image(segments: Segments) -> np.ndarray:
    """uint16 [H, W] track ids of things, 0 = none (untracked things too), as the node's ~/output/instance_ids."""
    out = np.zeros(segments.image_size, np.uint16)
    for m, t, thing in zip(segments.masks, segments.track_ids, segments.is_thing):
        if thing and t > 0:
            out[m] = min(int(t), 65535)
    return out


def _pose_at(x: float, y: float) -> Any:
    g = "geometry_msgs/msg/"
    pose = T(g + "Pose")(position=T(g + "Point")(x=x, y=y, z=0.0),
                         orientation=T(g + "Quaternion")(x=0.0, y=0.0, z=0.0, w=1.0))
    return T(g + "PoseWithCovariance")(pose=pose, covariance=np.zeros(36, np.float64))


@dataclass
class Prompt:
    """A recorded prompt: kind "box" (xyxy) or "point" (x, y in box[:2]); target = GT instance id."""

    kind: str
    box: np.ndarray
    target: int


def prompts_msg(prompts: Sequence[Prompt], stamp: int, frame_id: str = "camera") -> Any:
    D, BB, P2, PT = (T(f"vision_msgs/msg/{n}") for n in ("Detection2D", "BoundingBox2D", "Pose2D", "Point2D"))
    dets = []
    for p in prompts:
        x0, y0, x1, y1 = (float(v) for v in p.box) if p.kind == "box" else (*p.box[:2], *p.box[:2])
        dets.append(D(header=make_header(stamp, frame_id), results=[], id=str(p.target),
                      bbox=BB(center=P2(position=PT(x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0),
                              size_x=x1 - x0, size_y=y1 - y0)))
    return T("vision_msgs/msg/Detection2DArray")(header=make_header(stamp, frame_id), detections=dets)


def prompts_from_msg(msg: Any) -> list[Prompt]:
    out = []
    for d in msg.detections:
        c, sx, sy = d.bbox.center.position, d.bbox.size_x, d.bbox.size_y
        try:
            target = int(d.id)
        except ValueError as e:
            raise DecodeError("prompt id is not an instance id", repr(d.id)) from e
        if sx <= 0 and sy <= 0:
            out.append(Prompt("point", np.array([c.x, c.y, c.x, c.y], np.float32), target))
        else:
            out.append(Prompt("box", np.array([c.x - sx / 2, c.y - sy / 2, c.x + sx / 2, c.y + sy / 2], np.float32),
                              target))
    return out
