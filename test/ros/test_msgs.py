"""The one message codec (omg_seg_ros/msgs.py): image conversions and Segments -> messages, for the node's rclpy
classes and the bag tools' rosbags classes alike (no DDS needed: pure functions on real message types)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed in this environment")

from omg_seg_core.structures import SEMANTIC_IGNORE, Segments
from ros_helpers import require_interfaces

from omg_seg_ros.msgs import DecodeError, MessageCodec, image_to_numpy, image_to_rgb, segments_from_msg

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8)
RCLPY = MessageCodec.rclpy()


def rgb_to_image(rgb, encoding="rgb8"):
    return RCLPY.rgb_to_image(rgb, RCLPY.header(), encoding)


def rgb_to_compressed(rgb, fmt="jpeg"):
    return RCLPY.rgb_to_compressed(rgb, RCLPY.header(), fmt)


def numpy_to_image(arr, enc):
    return RCLPY.numpy_to_image(arr, enc, RCLPY.header())


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_decode_to_the_same_rgb(encoding):
    assert np.array_equal(image_to_rgb(rgb_to_image(RGB, encoding)), RGB)


def test_mono8_becomes_grey_rgb():
    msg = rgb_to_image(RGB, "mono8")
    out = image_to_rgb(msg)
    grey = np.frombuffer(bytes(msg.data), np.uint8).reshape(7, 5)
    assert out.shape == (7, 5, 3) and all(np.array_equal(out[:, :, c], grey) for c in range(3))


def test_row_padding_in_step_is_skipped():
    msg = rgb_to_image(RGB, "bgr8")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(7, 15)
    padded = np.concatenate([rows, np.full((7, 9), 77, np.uint8)], axis=1)  # step 24 > 15
    msg.step, msg.data = 24, padded.tobytes()
    assert np.array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize("field,value,match", [
    ("encoding", "yuv422", "unknown image encoding"),
    ("encoding", "16UC1", "unknown image encoding"),
    ("step", 10, "step 10 is smaller"),
    ("height", 9, "needs"),
    ("width", 0, "empty image"),
])
def test_bad_images_raise_naming_the_field(field, value, match):
    msg = rgb_to_image(RGB, "rgb8")
    setattr(msg, field, value)
    with pytest.raises(DecodeError, match=match):
        image_to_rgb(msg)


def test_truncated_data_is_rejected():
    msg = rgb_to_image(RGB, "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(DecodeError, match="bytes"):
        image_to_rgb(msg)


def test_compressed_png_is_lossless_and_garbage_is_rejected():
    assert np.array_equal(image_to_rgb(rgb_to_compressed(RGB, "png")), RGB)
    jpg = image_to_rgb(rgb_to_compressed(RGB, "jpeg"))
    assert jpg.shape == RGB.shape
    bad = rgb_to_compressed(RGB, "png")
    bad.data = b"not an image"
    with pytest.raises(DecodeError, match="cannot decode"):
        image_to_rgb(bad)


@pytest.mark.parametrize("enc,dtype", [("mono16", np.uint16), ("mono8", np.uint8)])
def test_label_images_round_trip(enc, dtype):
    arr = RNG.integers(0, np.iinfo(dtype).max, (6, 4)).astype(dtype)
    msg = numpy_to_image(arr, enc)
    assert msg.step == 4 * np.dtype(dtype).itemsize and msg.is_bigendian == 0
    assert np.array_equal(image_to_numpy(msg), arr)


def _segments() -> Segments:
    masks = np.zeros((3, 12, 10), bool)
    masks[0, 2:6, 1:4] = True
    masks[0, 3, 2] = False                 # a hole must survive the encoding
    masks[1, 0:12, 6:10] = True            # stuff
    masks[2, 8:10, 0:2] = True
    return Segments(masks, scores=[0.9, 0.8, 0.7], class_ids=[0, 8, 1], class_names=["box", "table", "ball"],
                    is_thing=[True, False, True], track_ids=[5, 50008, 0])


@pytest.fixture(params=["rclpy", "bags"])
def codec(request):
    """The node's codec and the bag tools' codec: every message test runs on both (they cannot drift)."""
    if request.param == "rclpy":
        require_interfaces()
        return RCLPY
    return MessageCodec.bags()


def test_segment_array_masks_are_lossless_crops(codec):
    seg = _segments()
    h = codec.header(12_000_000_034, "cam")
    msg = codec.segments_to_msg(seg, h)
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "cam"
    assert (msg.image_height, msg.image_width) == (12, 10)
    s0 = msg.segments[0]
    assert (s0.roi.x_offset, s0.roi.y_offset, s0.roi.width, s0.roi.height) == (1, 2, 3, 4)
    assert (s0.mask.width, s0.mask.height, s0.mask.encoding) == (3, 4, "mono8")
    assert set(np.unique(image_to_numpy(s0.mask)).tolist()) == {0, 255}
    assert [s.id for s in msg.segments] == [5, 50008, 0]
    assert np.array_equal(segments_from_msg(msg).masks, seg.masks)


def test_detections_things_only_with_track_ids_and_pixel_boxes(codec):
    msg = codec.detections_msg(_segments(), codec.header(0, "cam"))
    assert [d.id for d in msg.detections] == ["5", ""]
    d = msg.detections[0]
    assert (d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y) == (2.5, 4.0, 3, 4)
    assert d.results[0].hypothesis.class_id == "box"
    assert d.results[0].hypothesis.score == pytest.approx(0.9)


def test_label_images_and_label_info(codec):
    seg = _segments()
    sem = image_to_numpy(codec.semantic_image(seg, codec.header()))
    assert sem[3, 2] == SEMANTIC_IGNORE and sem[2, 1] == 0 and sem[0, 7] == 8 and sem[9, 0] == 1
    inst = image_to_numpy(codec.instance_image(seg, codec.header()))
    assert set(np.unique(inst).tolist()) == {0, 5}  # stuff and the untracked thing carry no id
    info = codec.label_info_msg(["box", "ball", "table"], codec.header())
    assert [(c.class_id, c.class_name) for c in info.class_map] == [
        (0, "box"), (1, "ball"), (2, "table"), (SEMANTIC_IGNORE, "unlabeled")]
