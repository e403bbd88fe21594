"""The one message codec: images <-> numpy, Segments <-> SegmentArray, Detection2DArray, LabelInfo, label images,
diagnostics, recorded prompts. The node (rclpy messages) and the bag tools (rosbags messages, no ROS install) use
the same functions, so what a result bag holds is what the node publishes.

Encoders are methods of `MessageCodec`, bound to one message library: `MessageCodec.rclpy()` or
`MessageCodec.bags()` (rosbags typestore, bag/typestore.py). Both libraries have the same field names; they
differ in how a message is built (rosbags dataclasses need every field) and how byte arrays are held, which is
all a codec knows. Decoders are plain functions: they read fields by name, so they take either library's
messages. Every decoder validates the message against its own header and raises `DecodeError` naming the field.

Formats (docs/ros.md):
- `omg_seg_msgs/SegmentArray`: one `Segment` per row; mask = mono8 crop of the mask's tight box (255 inside);
  `Segment.id` = track id (0 untracked), non-finite scores sent as 0.
- `vision_msgs/Detection2DArray`: things only (by default); `Detection2D.id` = track id as a decimal string ("" when
  untracked); one hypothesis (class name, score); bbox centre/size in pixels; pose position = box centre.
- label images: sensor_msgs/Image mono16, class ids with 65535 = unlabelled, or track ids with 0 = none.
- `vision_msgs/LabelInfo`: class id -> display name of the active vocabulary, plus 65535 "unlabeled".
Stamps in bags are int nanoseconds; boxes xyxy pixels.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable, Optional, Sequence

import numpy as np

from omg_seg_core.structures import SEMANTIC_IGNORE, Segments, masks_to_boxes

from omg_seg_core.spatial import DEPTH_ENCODINGS, DepthFrame, PinholeCamera, depth_to_metres, match_depth_size

from .msgs3d import Spatial3DEncoders, box_quaternions

#: Colour encodings accepted as input -> (channels, channel order).
INPUT_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"), "bgr8": (3, "bgr"), "mono8": (1, "mono"), "8uc1": (1, "mono"), "rgba8": (4, "rgb"),
    "bgra8": (4, "bgr"),
}
#: Encodings of the images the codec writes (and `image_to_numpy` reads) -> (channels, numpy dtype).
OUTPUT_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)), "mono8": (1, np.dtype(np.uint8)), "8uc1": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)), "16uc1": (1, np.dtype(np.uint16)),
}
#: Default largest image (pixels): refused before anything is allocated or decoded (a corrupt header can claim
#: 4 billion pixels, a 200 kB PNG 67 million). The node's parameter limits.max_image_pixels sets it.
MAX_PIXELS = 8192 * 8192


class DecodeError(ValueError):
    """A message that cannot be turned into an array; `reason` is the short key counted in reports."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------- decoders
def stamp_ns(msg: Any) -> int:
    """A stamped message's header stamp in int nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def stamp_s(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def is_compressed(msg: Any) -> bool:
    """sensor_msgs/CompressedImage (has `format`, no `encoding`)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def is_empty_image(msg: Any) -> bool:
    """True for the 'no image' value of optional image fields in service requests."""
    return msg is None or (int(msg.width) == 0 and int(msg.height) == 0 and len(msg.data) == 0)


def _check_size(w: int, h: int, max_pixels: int) -> None:
    if h <= 0 or w <= 0:
        raise DecodeError("empty image", f"{w}x{h}")
    if h * w > max_pixels:
        raise DecodeError("image too large", f"{w}x{h} = {w * h} pixels > limit {max_pixels} "
                                             "(parameter limits.max_image_pixels)")


def _pixels(msg: Any, dtype: np.dtype, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """[H, W] or [H, W, C] of an Image, honouring `step` (padded rows) and `is_bigendian`; native byte order."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    _check_size(w, h, max_pixels)
    row = w * channels * np.dtype(dtype).itemsize
    if step < row:
        raise DecodeError("truncated image data", f"step {step} is smaller than width*channels*bytes = {row} "
                                                  f"for '{msg.encoding}'")
    data = np.frombuffer(msg.data, np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data.view(np.uint8)
    if data.size < step * (h - 1) + row:
        raise DecodeError("truncated image data", f"data has {data.size} bytes but height {h} x step {step} "
                                                  f"needs {step * h}")
    rows = np.lib.stride_tricks.as_strided(data, shape=(h, row), strides=(step, 1))
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(dt).astype(np.dtype(dtype).newbyteorder("="), copy=False)
    return arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)


def image_to_rgb(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage (jpeg/png) -> uint8 RGB [H, W, 3],
    C-contiguous. Raises DecodeError (unknown encoding, empty, more than `max_pixels` pixels (a compressed image's
    size is read from its header, before decoding), step/data length mismatch, undecodable)."""
    if is_compressed(msg):
        return _compressed_to_rgb(msg, max_pixels)
    enc = (msg.encoding or "").strip().lower()
    if enc not in INPUT_ENCODINGS:
        raise DecodeError("unknown image encoding", f"'{msg.encoding}' is not one of {sorted(INPUT_ENCODINGS)}")
    ch, order = INPUT_ENCODINGS[enc]
    img = _pixels(msg, np.uint8, ch, max_pixels)
    if order == "mono":
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if order == "bgr":
        return np.ascontiguousarray(img[:, :, 2::-1])
    return np.ascontiguousarray(img[:, :, :3])


def compressed_size(data: np.ndarray) -> tuple[int, int]:
    """(width, height) a compressed image DECLARES in its header (PNG, JPEG, ... as Pillow reads them), without
    decoding a pixel: a 200 kB PNG may declare 8200 x 8200 (a decompression bomb)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DecodeError("undecodable compressed image",
                          f"cannot decode compressed image ({data.size} bytes): no readable image header ({e})") from None
    except Image.DecompressionBombError as e:  # Pillow's own limit (2 x 89 Mpx) is above any of ours
        raise DecodeError("image too large", str(e)) from None


def _compressed_to_rgb(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    import cv2  # only needed for compressed input

    data = np.frombuffer(msg.data, np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data.view(np.uint8)
    if data.size == 0:
        raise DecodeError("undecodable compressed image", "empty data")
    _check_size(*compressed_size(data), max_pixels)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise DecodeError("undecodable compressed image",
                          f"cannot decode compressed image (format '{msg.format}', {data.size} bytes)")
    return np.ascontiguousarray(img[:, :, ::-1])


def image_to_numpy(msg: Any) -> np.ndarray:
    """Image of an output encoding (mono8, mono16, rgb8; 8UC1 / 16UC1 alike) -> [H, W] or [H, W, 3] array of its
    dtype; a 0x0 image gives an empty array."""
    enc = (msg.encoding or "").lower()
    if enc not in OUTPUT_ENCODINGS:
        raise DecodeError("unknown image encoding", f"'{msg.encoding}' is not one of {sorted(OUTPUT_ENCODINGS)}")
    ch, dtype = OUTPUT_ENCODINGS[enc]
    if int(msg.height) == 0 or int(msg.width) == 0:
        return np.zeros((int(msg.height), int(msg.width)) + ((ch,) if ch > 1 else ()), dtype)
    return _pixels(msg, dtype, ch)


def label_to_array(msg: Any) -> np.ndarray:
    """Label image (mono16 / 16UC1, or mono8 / 8UC1 whose 255 is read as unlabelled) -> uint16 [H, W]."""
    enc = (msg.encoding or "").lower()
    if enc not in ("mono16", "16uc1", "mono8", "8uc1"):
        raise DecodeError("unknown label encoding", repr(msg.encoding))
    a = image_to_numpy(msg).astype(np.uint16)
    if enc in ("mono8", "8uc1"):
        a[a == 255] = SEMANTIC_IGNORE  # top value means unlabelled in both widths (ros_conventions.md)
    return a


def depth_from_msg(msg: Any, max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image (16UC1 / mono16 mm, 32FC1 m) -> float32 [H, W] metres, NaN = no reading.
    Raises msgs.DecodeError naming the problem."""
    enc = str(msg.encoding)
    if enc.upper() not in DEPTH_ENCODINGS:
        raise DecodeError("depth encoding", f"'{enc}' is not a depth encoding: use 16UC1 (mm) or 32FC1 (m)")
    return depth_to_metres(_pixels(msg, np.float32 if enc.upper() == "32FC1" else np.uint16, 1, max_pixels), enc)


def depth_frame_from_msgs(depth_msg: Any, info_msg: Any, size: tuple[int, int], max_pixels: int = MAX_PIXELS
                          ) -> DepthFrame:
    """A depth image + the colour camera's CameraInfo -> DepthFrame at the colour image's size (H, W): metres,
    resized when only the resolution differs (spatial.match_depth_size). Raises DecodeError / ValueError."""
    depth = match_depth_size(depth_from_msg(depth_msg, max_pixels), size)
    return DepthFrame(depth, camera_from_info(info_msg), stamp_s(depth_msg.header.stamp))


def camera_from_info(msg: Any) -> PinholeCamera:
    """sensor_msgs/CameraInfo -> PinholeCamera. Uses P (the rectified image's projection) when it is set, else K;
    ValueError for a zero / non-finite matrix or size (an uncalibrated camera)."""
    p = np.asarray(msg.p, np.float64).reshape(-1)
    k = np.asarray(msg.k, np.float64).reshape(-1)
    m = p if p.size == 12 and np.isfinite(p).all() and p[0] > 0 and p[5] > 0 else k
    return PinholeCamera.from_matrix(m, int(msg.width), int(msg.height))


def objects_3d_from_msg(msg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """vision_msgs/Detection3DArray of ground-truth objects -> (ids int64 [G] from `id`, centres float64 [G, 3],
    sizes float64 [G, 3]); boxes are read as axis-aligned in the header's frame."""
    ids, centres, sizes = [], [], []
    for d in msg.detections:
        try:
            ids.append(int(d.id))
        except ValueError:
            raise DecodeError("3D object id", f"Detection3D.id {d.id!r} is not an instance id") from None
        p, s = d.bbox.center.position, d.bbox.size
        centres.append((p.x, p.y, p.z))
        sizes.append((s.x, s.y, s.z))
    return (np.array(ids, np.int64), np.array(centres, np.float64).reshape(-1, 3),
            np.array(sizes, np.float64).reshape(-1, 3))


def segments_from_msg(msg: Any) -> Segments:
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
            crop = image_to_numpy(s.mask)
            if crop.shape != (r.height, r.width):
                raise DecodeError("segment mask size differs from roi", f"{crop.shape} vs {(r.height, r.width)}")
            masks[i, r.y_offset:r.y_offset + r.height, r.x_offset:r.x_offset + r.width] = crop > 0
    return Segments(masks, [s.score for s in msg.segments], [s.class_id for s in msg.segments],
                    [s.class_name for s in msg.segments], [s.is_thing for s in msg.segments],
                    track_ids=[s.id for s in msg.segments], task=msg.task)


def label_info_names(msg: Any) -> dict[int, str]:
    """vision_msgs/LabelInfo -> {class id: name} of the classes (the 65535 "unlabeled" entry is void, not a class)."""
    return {int(c.class_id): str(c.class_name) for c in msg.class_map if int(c.class_id) != SEMANTIC_IGNORE}


@dataclass
class Prompt:
    """A recorded prompt: kind "box" (xyxy) or "point" (x, y in box[:2]); target = GT instance id."""

    kind: str
    box: np.ndarray
    target: int


def prompts_from_msg(msg: Any) -> list[Prompt]:
    """Recorded prompts (a Detection2DArray: id = GT instance id; zero-size bbox = a point) -> [Prompt]."""
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


# ---------------------------------------------------------------------------------------------- encoders
class MessageCodec(Spatial3DEncoders):
    """Builds messages of one message library (module docstring; 3D messages: msgs3d.py).

    resolve: full type name ("sensor_msgs/msg/Image") -> message class; byte_array: uint8 numpy array -> what the
    library's uint8[] fields hold; byte_value: int -> a `byte` field's value.
    """

    def __init__(self, resolve: Callable[[str], type], byte_array: Callable[[np.ndarray], Any],
                 byte_value: Callable[[int], Any], name: str) -> None:
        self._resolve = functools.lru_cache(maxsize=None)(resolve)
        self._bytes, self._byte, self.name = byte_array, byte_value, name

    @classmethod
    @functools.lru_cache(maxsize=1)
    def rclpy(cls) -> "MessageCodec":
        """rclpy's generated message classes (the node)."""
        def resolve(name: str) -> type:
            pkg, _, typ = name.split("/")
            return getattr(import_module(f"{pkg}.msg"), typ)

        return cls(resolve, lambda a: np.ascontiguousarray(a, np.uint8).tobytes(), lambda v: bytes([int(v)]), "rclpy")

    @classmethod
    @functools.lru_cache(maxsize=1)
    def bags(cls) -> "MessageCodec":
        """The rosbags typestore's classes (bag tools; no ROS install needed)."""
        from .bag.typestore import typestore

        return cls(lambda name: typestore().types[name], lambda a: np.ascontiguousarray(a, np.uint8).reshape(-1),
                   int, "rosbags")

    def new(self, type_name: str, /, **fields: Any) -> Any:
        """A message of type `type_name` ("sensor_msgs/msg/Image") with these fields."""
        return self._resolve(type_name)(**fields)

    def header(self, stamp: int = 0, frame_id: str = "") -> Any:
        """std_msgs/Header with `stamp` in int nanoseconds."""
        return self.new("std_msgs/msg/Header", frame_id=frame_id, stamp=self.new(
            "builtin_interfaces/msg/Time", sec=int(stamp) // 1_000_000_000, nanosec=int(stamp) % 1_000_000_000))

    # ---- images
    def _image(self, arr: np.ndarray, encoding: str, header: Any) -> Any:
        arr = np.ascontiguousarray(arr)
        h, w = arr.shape[:2]
        if arr.dtype.itemsize > 1:
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        return self.new("sensor_msgs/msg/Image", header=header, height=int(h), width=int(w), encoding=encoding,
                        is_bigendian=0, step=int(arr.strides[0]) if h else int(w * arr.itemsize),
                        data=self._bytes(arr.view(np.uint8).reshape(-1)))

    def numpy_to_image(self, array: np.ndarray, encoding: str, header: Any) -> Any:
        """[H, W] (mono8 / mono16 / 16UC1) or [H, W, 3] (rgb8) array -> sensor_msgs/Image, little endian; the
        encoding is matched case-insensitively (as the decoders do) and written as given."""
        if encoding.lower() not in OUTPUT_ENCODINGS:
            raise ValueError(f"numpy_to_image: unsupported encoding '{encoding}'")
        ch, dtype = OUTPUT_ENCODINGS[encoding.lower()]
        arr = np.asarray(array, dtype=dtype)
        if (ch == 1 and arr.ndim != 2) or (ch > 1 and (arr.ndim != 3 or arr.shape[2] != ch)):
            raise ValueError(f"numpy_to_image: shape {arr.shape} does not fit encoding '{encoding}'")
        return self._image(arr, encoding, header)

    def rgb_to_image(self, rgb: np.ndarray, header: Any, encoding: str = "rgb8") -> Any:
        """uint8 RGB [H, W, 3] -> sensor_msgs/Image in any input encoding (cameras, players, tests)."""
        if encoding not in INPUT_ENCODINGS:
            raise ValueError(f"rgb_to_image: unsupported encoding '{encoding}'")
        ch, order = INPUT_ENCODINGS[encoding]
        arr = np.asarray(rgb, np.uint8)
        if order == "mono":
            arr = arr.mean(axis=2).astype(np.uint8) if arr.ndim == 3 else arr
        elif order == "bgr":
            arr = arr[:, :, ::-1]
        if ch == 4:
            arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
        return self._image(arr, encoding, header)

    def rgb_to_compressed(self, rgb: np.ndarray, header: Any, fmt: str = "jpeg", quality: Optional[int] = 90) -> Any:
        """uint8 RGB [H, W, 3] -> sensor_msgs/CompressedImage (jpeg or png)."""
        import cv2

        ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
        if ext is None:
            raise ValueError(f"rgb_to_compressed: unsupported format '{fmt}'")
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" and quality else []
        ok, enc = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
        if not ok:
            raise ValueError(f"rgb_to_compressed: cv2 could not encode a {np.shape(rgb)} image as {fmt}")
        return self.new("sensor_msgs/msg/CompressedImage", header=header, format="jpeg" if ext == ".jpg" else "png",
                        data=self._bytes(enc.reshape(-1)))

    def semantic_image(self, seg: Segments, header: Any) -> Any:
        """mono16 class-id image (65535 = unlabelled), later segments on top."""
        return self.numpy_to_image(seg.semantic_map(SEMANTIC_IGNORE), "mono16", header)

    def instance_image(self, seg: Segments, header: Any) -> Any:
        """mono16 track-id image of the things (0 = none; untracked things get 0 too, so every non-zero value
        matches a `Detection2D.id` / `Segment.id`)."""
        ids = np.where(seg.is_thing & (seg.track_ids > 0), seg.track_ids, -1)
        return self.numpy_to_image(seg.paint(ids, 0), "mono16", header)

    # ---- segments and detections
    def segments_to_msg(self, seg: Segments, header: Any, task: Optional[str] = None) -> Any:
        """Segments -> omg_seg_msgs/SegmentArray stamped with `header` (the input image's)."""
        h, w = seg.image_size
        boxes = masks_to_boxes(seg.masks)  # tight boxes of the masks themselves: the crop can never lose a pixel
        quats = box_quaternions(seg.boxes_3d)
        items = []
        for i in range(len(seg)):
            x0, y0, x1, y1 = (int(v) for v in boxes[i])
            crop = seg.masks[i, y0:y1, x0:x1].astype(np.uint8) * np.uint8(255)
            score = float(seg.scores[i])
            items.append(self.new(
                "omg_seg_msgs/msg/Segment", id=int(max(0, min(int(seg.track_ids[i]), 2**32 - 1))),
                class_id=int(seg.class_ids[i]), class_name=str(seg.class_names[i]),
                score=score if np.isfinite(score) else 0.0, is_thing=bool(seg.is_thing[i]),
                roi=self.new("sensor_msgs/msg/RegionOfInterest", x_offset=x0, y_offset=y0, height=y1 - y0,
                             width=x1 - x0, do_rectify=False),
                mask=self._image(crop, "mono8", header), **self.segment_3d_fields(seg, i, quats)))
        return self.new("omg_seg_msgs/msg/SegmentArray", header=header, image_height=int(h), image_width=int(w),
                        task=task if task is not None else (seg.task or ""), segments=items)

    def _pose_at(self, x: float, y: float) -> Any:
        g = "geometry_msgs/msg/"
        pose = self.new(g + "Pose", position=self.new(g + "Point", x=x, y=y, z=0.0),
                        orientation=self.new(g + "Quaternion", x=0.0, y=0.0, z=0.0, w=1.0))
        return self.new(g + "PoseWithCovariance", pose=pose, covariance=np.zeros(36, np.float64))

    def _detection(self, header: Any, det_id: str, box: Sequence[float], results: list) -> Any:
        x0, y0, x1, y1 = (float(v) for v in box)
        v = "vision_msgs/msg/"
        center = self.new(v + "Pose2D", position=self.new(v + "Point2D", x=(x0 + x1) / 2.0, y=(y0 + y1) / 2.0),
                          theta=0.0)
        return self.new(v + "Detection2D", header=header, results=results, id=det_id,
                        bbox=self.new(v + "BoundingBox2D", center=center, size_x=x1 - x0, size_y=y1 - y0))

    def detections_msg(self, seg: Segments, header: Any, things_only: bool = True) -> Any:
        """Segments -> vision_msgs/Detection2DArray (module docstring); empty masks are left out."""
        v = "vision_msgs/msg/"
        dets = []
        for i in range(len(seg)):
            if things_only and not seg.is_thing[i]:
                continue
            x0, y0, x1, y1 = (float(b) for b in seg.boxes[i])
            if x1 <= x0 or y1 <= y0:
                continue  # empty mask: nothing to locate
            score = float(seg.scores[i])
            # No 3D pose from a 2D segmenter: the pose holds the box centre (pixels), as other 2D detectors do.
            hyp = self.new(v + "ObjectHypothesisWithPose", pose=self._pose_at((x0 + x1) / 2.0, (y0 + y1) / 2.0),
                           hypothesis=self.new(v + "ObjectHypothesis", class_id=str(seg.class_names[i]),
                                               score=score if np.isfinite(score) else 0.0))
            tid = int(seg.track_ids[i])
            dets.append(self._detection(header, str(tid) if tid > 0 else "", (x0, y0, x1, y1), [hyp]))
        return self.new(v + "Detection2DArray", header=header, detections=dets)

    def label_info_msg(self, class_names: Sequence[str], header: Any, threshold: float = 0.0) -> Any:
        """Vocabulary -> vision_msgs/LabelInfo (class id = index into the vocabulary; 65535 is unlabelled)."""
        v = "vision_msgs/msg/"
        classes = [self.new(v + "VisionClass", class_id=i, class_name=str(n))
                   for i, n in enumerate(list(class_names)[:SEMANTIC_IGNORE])]
        classes.append(self.new(v + "VisionClass", class_id=SEMANTIC_IGNORE, class_name="unlabeled"))
        return self.new(v + "LabelInfo", header=header, class_map=classes, threshold=float(threshold))

    def prompts_msg(self, prompts: Sequence[Prompt], header: Any) -> Any:
        """Recorded prompts -> Detection2DArray (id = GT instance id, a point as a zero-size bbox)."""
        dets = [self._detection(header, str(p.target), p.box if p.kind == "box" else (*p.box[:2], *p.box[:2]), [])
                for p in prompts]
        return self.new("vision_msgs/msg/Detection2DArray", header=header, detections=dets)

    def diagnostics_msg(self, node_name: str, stamp: Any, level: int, message: str, values: dict,
                        hardware_id: str = "", what: str = "pipeline") -> Any:
        """One DiagnosticStatus ("<node>: <what>", e.g. "omg_seg: front pipeline") in a DiagnosticArray; `stamp` a
        builtin_interfaces/Time."""
        d = "diagnostic_msgs/msg/"
        status = self.new(d + "DiagnosticStatus", level=self._byte(level), name=f"{node_name}: {what}",
                          message=message, hardware_id=hardware_id,
                          values=[self.new(d + "KeyValue", key=str(k), value=str(v)) for k, v in values.items()])
        header = self.new("std_msgs/msg/Header", stamp=stamp, frame_id="")
        return self.new(d + "DiagnosticArray", header=header, status=[status])


__all__ = ["MessageCodec", "DecodeError", "Prompt", "INPUT_ENCODINGS", "OUTPUT_ENCODINGS", "MAX_PIXELS", "stamp_ns",
           "stamp_s", "is_compressed", "is_empty_image", "image_to_rgb", "image_to_numpy", "label_to_array",
           "segments_from_msg", "label_info_names", "prompts_from_msg", "depth_from_msg", "camera_from_info",
           "depth_frame_from_msgs", "objects_3d_from_msg"]
