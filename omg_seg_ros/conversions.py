"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge (not installable from PyPI).

Every decoder validates the message against its own header (encoding, width, height, step, data length) and
raises `ImageError` with a message that names the offending field, so the node can answer a service call with
it or log a throttled warning — a malformed image never reaches the model.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

#: Input encodings the node accepts -> (channels, order of the colour channels).
INPUT_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "mono8": (1, "mono"),
    "rgba8": (4, "rgb"),
    "bgra8": (4, "bgr"),
}

#: Output encodings this module writes -> (channels, numpy dtype).
OUTPUT_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
}

#: Refuse absurd sizes before allocating anything (a corrupt header can claim 4 billion pixels).
MAX_PIXELS = 8192 * 8192


class ImageError(ValueError):
    """A sensor_msgs image that cannot be decoded (message says which field is wrong)."""


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, mono8, rgba8, bgra8) -> uint8 RGB [H, W, 3], C-contiguous.

    Honours `step` (row padding). Raises ImageError for unsupported encodings, empty images and
    width/height/step/data-length mismatches.
    """
    enc = (msg.encoding or "").strip().lower()
    if enc not in INPUT_ENCODINGS:
        raise ImageError(f"unsupported image encoding '{msg.encoding}'; supported: {sorted(INPUT_ENCODINGS)}")
    ch, order = INPUT_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError(f"empty image ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise ImageError(f"image too large ({w}x{h} > {MAX_PIXELS} pixels)")
    row = w * ch
    if step < row:
        raise ImageError(f"step {step} is smaller than width*channels = {w}*{ch} = {row} for '{enc}'")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < step * (h - 1) + row:
        raise ImageError(f"data has {buf.size} bytes but height {h} x step {step} needs {step * h}")
    # Rows may carry padding beyond width*channels: view with the real stride, then drop the padding.
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1))
    img = rows.reshape(h, w, ch)
    if order == "mono":
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if order == "bgr":
        return np.ascontiguousarray(img[:, :, 2::-1])
    return np.ascontiguousarray(img[:, :, :3])


def compressed_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png, any format OpenCV decodes) -> uint8 RGB [H, W, 3]."""
    import cv2  # only needed for compressed input

    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageError("empty compressed image")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageError(f"cannot decode compressed image (format '{msg.format}', {data.size} bytes)")
    return np.ascontiguousarray(img[:, :, ::-1])


def is_empty_image(msg) -> bool:
    """True for the 'no image' value of optional image fields in service requests."""
    return msg is None or (int(msg.width) == 0 and int(msg.height) == 0 and len(msg.data) == 0)


def numpy_to_image(array: np.ndarray, encoding: str, header=None):
    """numpy -> sensor_msgs/Image. `array` is [H, W] (mono8/mono16) or [H, W, 3] (rgb8); little endian."""
    from sensor_msgs.msg import Image

    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f"numpy_to_image: unsupported encoding '{encoding}'")
    ch, dtype = OUTPUT_ENCODINGS[encoding]
    arr = np.ascontiguousarray(array, dtype=dtype)
    if (ch == 1 and arr.ndim != 2) or (ch > 1 and (arr.ndim != 3 or arr.shape[2] != ch)):
        raise ValueError(f"numpy_to_image: shape {arr.shape} does not fit encoding '{encoding}'")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * ch * dtype.itemsize)
    if dtype.itemsize > 1 and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    msg.data = arr.tobytes()
    return msg


def image_to_numpy(msg) -> np.ndarray:
    """Inverse of `numpy_to_image` for the output encodings (mono8, mono16, rgb8); used by tools and tests."""
    enc = msg.encoding
    if enc not in OUTPUT_ENCODINGS:
        raise ImageError(f"image_to_numpy: unsupported encoding '{enc}'")
    ch, dtype = OUTPUT_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        return np.zeros((h, w) if ch == 1 else (h, w, ch), dtype)
    dt = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if raw.size < step * h or step < w * ch * dtype.itemsize:
        raise ImageError(f"image_to_numpy: {raw.size} bytes do not fit {w}x{h} step {step} '{enc}'")
    rows = raw[: step * h].reshape(h, step)[:, : w * ch * dtype.itemsize]
    arr = np.ascontiguousarray(rows).view(dt).astype(dtype)
    return arr.reshape(h, w) if ch == 1 else arr.reshape(h, w, ch)


def rgb_to_image(rgb: np.ndarray, encoding: str = "rgb8", header=None):
    """uint8 RGB [H, W, 3] -> sensor_msgs/Image in any of the input encodings (for publishers and tests)."""
    from sensor_msgs.msg import Image

    if encoding not in INPUT_ENCODINGS:
        raise ValueError(f"rgb_to_image: unsupported encoding '{encoding}'")
    ch, order = INPUT_ENCODINGS[encoding]
    arr = np.asarray(rgb, np.uint8)
    if order == "mono":
        arr = arr.mean(axis=2).astype(np.uint8)[:, :, None] if arr.ndim == 3 else arr[:, :, None]
    elif order == "bgr":
        arr = arr[:, :, ::-1]
    if ch == 4:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
    arr = np.ascontiguousarray(arr)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.step = int(arr.shape[1] * ch)
    msg.data = arr.tobytes()
    return msg


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, quality: Optional[int] = 90):
    """uint8 RGB [H, W, 3] -> sensor_msgs/CompressedImage (jpeg or png)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"rgb_to_compressed: unsupported format '{fmt}'")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" and quality else []
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise ValueError("rgb_to_compressed: encoding failed")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if ext == ".jpg" else "png"
    msg.data = enc.tobytes()
    return msg


__all__ = [
    "ImageError", "INPUT_ENCODINGS", "OUTPUT_ENCODINGS", "image_to_rgb", "compressed_to_rgb", "is_empty_image",
    "numpy_to_image", "image_to_numpy", "rgb_to_image", "rgb_to_compressed",
]
