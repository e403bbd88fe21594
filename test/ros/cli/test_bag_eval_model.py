"""`omg-seg-make-bag` -> `omg-seg-eval` with the real tiny model (the shipped checkpoint when present, else an
untrained one: the plumbing is the same, the numbers are not meaningful) in video mode, with prompts and a
result bag that holds the node's output topics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omg_seg_core.config import default_checkpoint_path
from omg_seg_ros import msgs
from omg_seg_ros.bag.io import open_reader
from omg_seg_ros.cli import bag_eval, make_bag


def test_make_bag_then_eval_with_model(tmp_path: Path) -> None:
    bag = tmp_path / "sample"
    assert make_bag.main(["--out", str(bag), "--frames", "3", "--seed", "1", "--size", "160x120", "--video",
                          "--prompts", "--format", "sqlite3"]) == 0
    out = tmp_path / "eval"
    weights = [] if default_checkpoint_path("omg_seg_tiny") else ["--allow-random-weights"]
    rc = bag_eval.main([str(bag), "--out", str(out), "--model", "tiny", "--vocabulary", "robot_workspace", "--video",
                        "--result-bag", str(out / "result_bag"), *weights])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    r = rep["results"]
    assert ("untrained" in rep["meta"]["weights"]) == bool(weights)  # the report says which weights were used
    assert r["frames_evaluated"] == 3 and r["frames_with_ground_truth"] == 3 and r["skipped"] == {}
    for stage in ("preprocess", "image_graph", "panoptic", "instances", "semantic", "prompt", "tracker", "total",
                  "node_frame", "total_cpu"):
        s = r["latency_ms"][stage]
        assert s["count"] == 3 and 0 < s["p50"] <= s["p95"] <= s["max"], stage
    assert r["latency_ms"]["total"]["p50"] >= r["latency_ms"]["image_graph"]["p50"]
    frames = rep["frames"]
    for f in frames:  # node_frame is the sum of its parts, per frame
        lat = f["latency_ms"]
        assert lat["node_frame"] == pytest.approx(
            lat["preprocess"] + lat["image_graph"] + lat["panoptic"] + lat["tracker"], abs=0.01)
    assert r["prompts"]["count"] > 0 and r["prompts"]["count"] == r["prompts"]["point"]["count"] + r["prompts"]["box"]["count"]
    for k in ("IDF1", "HOTA", "IDSW", "vpq"):
        assert k in r["tracking"], k
    assert r["tracking"]["gt_tracks"] > 0
    assert 0.0 <= r["panoptic"]["all"]["pq"] <= 1.0 and r["mask_ap"]["num_gt"] > 0
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "latency_hist.png", "worst_frames.png",
                                                "state.pkl", "result_bag"}
    reader = open_reader(out / "result_bag")
    try:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/omg_seg/output/segments"] == 3 and counts["/omg_seg/output/overlay"] == 3
        assert counts["/camera/image_raw"] == 3 and counts["/omg_seg/output/label_info"] == 1
        # Output stamps are the input stamps (never now()).
        conn = [c for c in reader.connections if c.topic == "/omg_seg/output/semantic"]
        stamps = [msgs.stamp_ns(reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages(conn)]
        assert stamps == [make_bag.T0_NS + i * make_bag.PERIOD_NS for i in range(3)]
        label = reader.deserialize(next(reader.messages(conn))[2], "sensor_msgs/msg/Image")
        assert msgs.label_to_array(label).shape == (120, 160)
    finally:
        reader.close()
    assert np.isfinite(r["semantic"]["pixel_accuracy"])


def test_coco_panoptic_folder_source_and_eval(tmp_path: Path) -> None:
    """A COCO-panoptic folder (written by the data generator) evaluates like a bag; its ground truth read back
    equals the generator's own label images."""
    from omg_seg_core.data.synth.generate import write_dataset
    from omg_seg_core.data.synth.generator import SynthGenerator
    from omg_seg_core.eval.classmap import ClassMap
    from omg_seg_core.eval.coco_source import coco_frames
    from omg_seg_core.text.vocabulary import load_vocabulary

    write_dataset(tmp_path / "ds", split="val", seed=5, size=(160, 120), frames=2, image_format="png",
                  progress=False)
    ann = tmp_path / "ds" / "annotations.json"
    vocab = load_vocabulary("robot_workspace")
    source, total, meta = coco_frames(ann, stream_skips={})
    frames = list(source(ClassMap(list(vocab.names), vocab.num_things), 0))
    assert total == 2 and len(frames) == 2
    gen = SynthGenerator(160, 120, split="val", seed=5)
    try:
        for f in frames:
            ref = gen.frame(f.index)
            np.testing.assert_array_equal(f.gt.semantic, ref.semantic)
            np.testing.assert_array_equal(f.rgb, ref.rgb)
            things = [s for s in ref.segments if s.is_thing]
            assert len(np.unique(f.gt.instance_ids[f.gt.instance_ids > 0])) == len(things)
    finally:
        gen.close()
    weights = [] if default_checkpoint_path("omg_seg_tiny") else ["--allow-random-weights"]
    rc = bag_eval.main([str(ann), "--out", str(tmp_path / "eval"), "--model", "tiny", "--vocabulary",
                        "robot_workspace", *weights])
    rep = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert rc == 0 and rep["results"]["frames_evaluated"] == 2 and rep["meta"]["samples"] == 2
    assert rep["results"]["panoptic"]["num_images"] == 2 and rep["meta"]["classes_unknown_to_model"] == "none"


def test_make_bag_with_depth_then_eval_reports_3d(tmp_path: Path) -> None:
    """--depth writes depth + camera_info + true 3D boxes; omg-seg-eval pairs them by stamp and reports the 3D
    answer's error (the aim for the sensor model's depth is <= 3 cm median; 5 cm leaves room for 3 frames)."""
    if not default_checkpoint_path("omg_seg_tiny"):
        pytest.skip("needs the shipped omg_seg_tiny checkpoint (3D numbers of an untrained model mean nothing)")
    bag = tmp_path / "depth_bag"
    assert make_bag.main(["--out", str(bag), "--frames", "3", "--seed", "2", "--depth"]) == 0
    reader = open_reader(bag)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()
    assert types["/camera/depth/image_raw"] == "sensor_msgs/msg/Image"
    assert types["/camera/camera_info"] == "sensor_msgs/msg/CameraInfo"
    assert types["/camera/gt/objects_3d"] == "vision_msgs/msg/Detection3DArray"
    out = tmp_path / "eval"
    assert bag_eval.main([str(bag), "--out", str(out), "--vocabulary", "robot_workspace",
                          "--result-bag", str(out / "result_bag")]) == 0
    r = json.loads((out / "report.json").read_text())["results"]
    d3 = r["depth_3d"]
    assert d3["objects"] > 5 and d3["valid"] >= 0.8 * d3["matched"] > 0
    assert d3["centroid_error_cm_median"] < 5.0
    assert "depth_3d" in r["latency_ms"] and r["skipped"] == {}
    assert "## 3D from depth" in (out / "report.md").read_text()
    reader = open_reader(out / "result_bag")
    try:
        assert {c.topic: c.msgcount for c in reader.connections}["/omg_seg/output/detections_3d"] == 3
    finally:
        reader.close()
    # a depth topic that does not fit the image: every frame is still evaluated in 2D, the reason is counted
    odd = tmp_path / "odd_bag"
    samples = [make_bag.Sample(s.rgb, s.semantic, s.instance_ids, depth=s.depth[:, :200], camera=s.camera,
                               objects_3d=s.objects_3d)
               for s in make_bag.synthetic_samples(2, seed=2, depth="clean")]
    from omg_seg_core.data.synth import world

    make_bag.write_bag(odd, samples, world.CLASS_NAMES)
    out2 = tmp_path / "eval_odd"
    assert bag_eval.main([str(odd), "--out", str(out2), "--vocabulary", "robot_workspace"]) == 0
    r2 = json.loads((out2 / "report.json").read_text())["results"]
    assert r2["frames_evaluated"] == 2 and r2["panoptic"] is not None and r2["depth_3d"] is None
    assert any("depth not usable" in k and "aspect" in k for k in r2["skipped"]), r2["skipped"]
