"""`omg-seg-eval` end to end on real bags written with rosbags: recorded predictions (fast, exact expectations),
resume, and every bad-input case of issue #7 (missing topics, unknown encodings, GT size, stamps, truncation)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from omg_seg_core.data.synth import world
from omg_seg_ros import msgs
from omg_seg_ros.bag.io import BagWriter
from omg_seg_ros.cli import bag_eval
from omg_seg_ros.cli.make_bag import PERIOD_NS, T0_NS, Sample, synthetic_samples
from omg_seg_ros.msgs import MessageCodec

BAG = MessageCodec.bags()

PRED = "/omg_seg/output/segments"


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    """Three generated frames (160x120) with GT segments and prompts."""
    return list(synthetic_samples(3, seed=3, size=(160, 120), with_prompts=True, with_segments=True))


def write_custom(path: Path, samples: list[Sample], storage: str = "mcap",
                 mutate: Optional[Callable[[int, str, object], object]] = None, pred_drop_first_thing: bool = False,
                 stamp_offset_ns: int = 0) -> Path:
    """Image + GT label images + LabelInfo + a recorded prediction (= GT SegmentArray, optionally without its
    first thing). `mutate(i, topic, msg)` may replace or drop (None) any message."""
    with BagWriter(path, storage) as w:
        w.write("/camera/gt/label_info", BAG.label_info_msg(world.CLASS_NAMES, BAG.header(T0_NS)), T0_NS, latched=True)
        for i, s in enumerate(samples):
            t = T0_NS + i * PERIOD_NS
            pred = s.segments
            if pred_drop_first_thing:
                first = int(np.flatnonzero(pred.is_thing)[0])
                pred = pred.select([k for k in range(len(pred)) if k != first])
            gt_header = BAG.header(t + stamp_offset_ns)
            by_topic = {"/camera/image_raw": BAG.rgb_to_image(s.rgb, BAG.header(t)),
                        "/camera/gt/semantic": BAG.numpy_to_image(s.semantic, "mono16", gt_header),
                        "/camera/gt/instance_ids": BAG.numpy_to_image(s.instance_ids, "mono16", gt_header),
                        PRED: BAG.segments_to_msg(pred, BAG.header(t))}
            for topic, msg in by_topic.items():
                msg = mutate(i, topic, msg) if mutate else msg
                if msg is not None:
                    w.write(topic, msg, t)
    return path


def run_eval(bag: Path, out: Path, *extra: str) -> tuple[int, dict]:
    rc = bag_eval.main([str(bag), "--out", str(out), "--predictions-topic", PRED, "--vocabulary", "robot_workspace",
                        *extra])
    return rc, json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_recorded_ground_truth_scores_one(tmp_path: Path, samples: list[Sample], storage: str) -> None:
    bag = write_custom(tmp_path / "bag", samples, storage)
    rc, rep = run_eval(bag, tmp_path / "out")
    r = rep["results"]
    assert rc == 0 and r["frames_evaluated"] == 3 and r["skipped"] == {}
    assert r["panoptic"]["all"]["pq"] == 1.0 and r["semantic"]["miou"] == 1.0
    assert r["mask_ap"]["ap"] == pytest.approx(1.0)
    for f in ("report.md", "per_class_pq.png", "worst_frames.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0


def test_missing_thing_gives_counted_false_negatives(tmp_path: Path, samples: list[Sample]) -> None:
    # Each frame's prediction lacks its first thing: that GT instance is a FN, everything else matches with
    # IoU 1 (the dropped pixels are void in the prediction, so no FP). Per class c: TP_c = n_c - d_c, FN_c = d_c,
    # SQ 1, PQ_c = TP_c / (TP_c + FN_c / 2). Expected values come from the GT segments, not from the evaluator.
    bag = write_custom(tmp_path / "bag", samples, pred_drop_first_thing=True)
    rc, rep = run_eval(bag, tmp_path / "out")
    n: dict[str, int] = {}
    d: dict[str, int] = {}
    for s in samples:
        seg = s.segments
        first = int(np.flatnonzero(seg.is_thing)[0])
        for k, name in enumerate(seg.class_names):
            n[name] = n.get(name, 0) + 1
        d[seg.class_names[first]] = d.get(seg.class_names[first], 0) + 1
    per = rep["results"]["panoptic"]["per_class"]
    for name in n:
        tp, fn = n[name] - d.get(name, 0), d.get(name, 0)
        assert (per[name]["tp"], per[name]["fn"], per[name]["fp"]) == (tp, fn, 0), name
        assert per[name]["pq"] == pytest.approx(tp / (tp + fn / 2)), name
    assert sum(f["fn"] for f in rep["frames"]) == 3


def test_resume_continues_and_matches_a_fresh_run(tmp_path: Path, samples: list[Sample], capsys) -> None:
    bag = write_custom(tmp_path / "bag", samples, pred_drop_first_thing=True)
    out = tmp_path / "out"
    rc, part = run_eval(bag, out, "--max-frames", "2")
    assert rc == 0 and part["results"]["frames_evaluated"] == 2
    rc, resumed = run_eval(bag, out)
    assert "resuming after 2 frames" in capsys.readouterr().err
    assert resumed["meta"]["resumed_at_frame"] == 2 and resumed["results"]["frames_evaluated"] == 3
    rc, fresh = run_eval(bag, tmp_path / "fresh", "--restart")
    assert resumed["results"]["panoptic"] == fresh["results"]["panoptic"]
    assert [f["pq"] for f in resumed["frames"]] == [f["pq"] for f in fresh["frames"]]
    # A finished run re-run: nothing is recomputed, the report is the same.
    rc, again = run_eval(bag, out)
    assert again["results"]["panoptic"] == fresh["results"]["panoptic"]


def test_unknown_encoding_and_size_mismatch_are_counted(tmp_path: Path, samples: list[Sample]) -> None:
    def mutate(i: int, topic: str, msg):
        if i == 0 and topic == "/camera/image_raw":
            msg.encoding = "yuv422"
        if i == 1 and topic == "/camera/gt/semantic":
            return BAG.numpy_to_image(np.zeros((10, 10), np.uint16), "mono16", BAG.header(msgs.stamp_ns(msg)))
        return msg

    rc, rep = run_eval(write_custom(tmp_path / "bag", samples, mutate=mutate), tmp_path / "out")
    r = rep["results"]
    assert rc == 0
    assert r["skipped"]["image not decodable: unknown image encoding (frame skipped)"] == 1
    assert r["skipped"]["ground truth not usable: ground truth size differs from the image "
                        "(frame evaluated for latency only)"] == 1
    assert r["frames_evaluated"] == 2 and r["frames_with_ground_truth"] == 1
    assert "10x10 vs image 160x120" in rep["meta"]["skip_examples"][
        "ground truth not usable: ground truth size differs from the image (frame evaluated for latency only)"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "1 × image not decodable: unknown image encoding" in md


def test_mismatched_stamps_counted_then_joined_with_tolerance(tmp_path: Path, samples: list[Sample]) -> None:
    bag = write_custom(tmp_path / "bag", samples, stamp_offset_ns=1_000_000)  # GT stamped 1 ms late
    rc, rep = run_eval(bag, tmp_path / "strict")
    sk = rep["results"]["skipped"]
    assert sk["no ground truth with a matching stamp (frame evaluated for latency only)"] == 3
    assert sk["semantic ground truth without an image at the same stamp"] == 3
    assert rep["results"]["panoptic"] is None
    rc, rep = run_eval(bag, tmp_path / "tolerant", "--stamp-tolerance-ms", "2")
    assert rep["results"]["skipped"] == {} and rep["results"]["panoptic"]["all"]["pq"] == 1.0


def test_missing_topics(tmp_path: Path, samples: list[Sample], capsys) -> None:
    bag = write_custom(tmp_path / "bag", samples, mutate=lambda i, t, m: None if t == "/camera/image_raw" else m)
    rc, rep = run_eval(bag, tmp_path / "out")
    err = capsys.readouterr().err
    assert rc == 2 and "no image topics found" in err and "/camera/gt/semantic" in err
    assert rep["results"]["frames_evaluated"] == 0 and "no image topics" in rep["meta"]["error"]
    rc = bag_eval.main([str(bag), "--out", str(tmp_path / "o2"), "--predictions-topic", "/nope",
                        "--vocabulary", "robot_workspace", "--image-topic", "/camera/gt/semantic"])
    assert rc == 2 and "predictions topic /nope not in the bag" in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_is_a_clear_error_or_partial_result(tmp_path: Path, samples: list[Sample], storage: str,
                                                          capsys) -> None:
    bag = write_custom(tmp_path / "bag", samples * 4, storage)  # 12 frames
    data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size * 6 // 10)
    rc, rep = run_eval(bag, tmp_path / "out")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    n = rep["results"]["frames_evaluated"]
    if storage == "sqlite3":  # SQLite reports the whole file as malformed: nothing is readable, say so
        assert rc == 2 and n == 0 and "cannot open bag" in rep["meta"]["error"] and "malformed" in err
    else:  # MCAP is read record by record up to the cut: a partial evaluation that says so
        assert rc == 0 and 0 < n < 12, n
        assert "bag damaged" in " ".join(rep["meta"]["errors"]) and "bag damaged" in err
        assert rep["results"]["panoptic"]["all"]["pq"] == 1.0  # what was read is intact


def test_mcap_without_metadata_yaml_is_read(tmp_path: Path, samples: list[Sample]) -> None:
    """A recording killed before rosbag2 wrote metadata.yaml and the MCAP summary: the folder still evaluates."""
    bag = write_custom(tmp_path / "bag", samples, "mcap")
    (bag / "metadata.yaml").unlink()
    rc, rep = run_eval(bag, tmp_path / "out")
    assert rc == 0 and rep["results"]["frames_evaluated"] == 3 and rep["results"]["panoptic"]["all"]["pq"] == 1.0


def test_video_mode_tracking_metrics_on_recorded_ids(tmp_path: Path) -> None:
    """Recorded predictions carrying the GT identities score IDF1 = HOTA = VPQ = 1 with no ID switch; swapping two
    objects' ids in the last frame costs exactly those two objects an ID switch each and splits their tubes in
    the 5-frame VPQ windows (6 frames: windows of 5 exist; 1-frame windows cannot see identities)."""
    video = list(synthetic_samples(6, seed=2, size=(160, 120), video=True, with_segments=True))
    rc, rep = run_eval(write_custom(tmp_path / "bag", video), tmp_path / "out", "--video")
    tr = rep["results"]["tracking"]
    assert rc == 0 and tr["IDSW"] == 0 and tr["gt_tracks"] == tr["pred_tracks"] > 1
    assert tr["IDF1"] == pytest.approx(1.0) and tr["HOTA"] == pytest.approx(1.0) and tr["vpq"] == pytest.approx(1.0)
    assert tr["stq"] == pytest.approx(1.0) and tr["aq"] == pytest.approx(1.0)

    def swap_last(i: int, topic: str, msg):
        if i == 5 and topic == PRED:
            things = [s for s in msg.segments if s.is_thing]
            things[0].id, things[1].id = things[1].id, things[0].id
        return msg

    rc, rep = run_eval(write_custom(tmp_path / "bag2", video, mutate=swap_last), tmp_path / "out2", "--video")
    tr = rep["results"]["tracking"]
    assert tr["IDSW"] == 2 and tr["IDF1"] < 1.0 and tr["vpq"] < 1.0
    assert tr["per_window"]["1"]["vpq"] == 1.0 and tr["per_window"]["5"]["things"] < 1.0
    assert tr["aq"] < 1.0 and tr["sq"] == 1.0 and tr["stq"] == pytest.approx(tr["aq"] ** 0.5)
    assert rep["results"]["panoptic"]["all"]["pq"] == 1.0  # per-frame PQ does not see identities


def test_node_yaml_parameters_and_overrides(tmp_path: Path) -> None:
    """--params reads the node's ros__parameters (nested keys flattened with dots); flags and --set override."""
    y = tmp_path / "perception.yaml"
    y.write_text("omg_seg:\n  ros__parameters:\n    model: omg_seg_tiny\n    object_mask_thr: 0.3\n"
                 "    vocabulary_file: robot_workspace\n    tracking:\n      enabled: true\n      iou_weight: 2.0\n")
    a = bag_eval.parse_args(["bag", "--params", str(y), "--set", "object_mask_thr=0.5", "--device", "cpu",
                             "--video"])
    v = bag_eval.node_values(a)
    assert v["object_mask_thr"] == 0.5 and v["tracking.iou_weight"] == 2.0 and v["tracking.enabled"] is True
    assert v["vocabulary_file"] == "robot_workspace" and v["device"] == "cpu" and v["model"] == "omg_seg_tiny"
    # Without --video the tracker is off whatever the YAML says (frames are evaluated independently).
    assert bag_eval.node_values(bag_eval.parse_args(["bag", "--params", str(y)]))["tracking.enabled"] is False
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        bag_eval.node_values(bag_eval.parse_args(["bag", "--set", "oops"]))


def test_missing_weights_and_vocabulary_are_clear_errors(tmp_path: Path, samples: list[Sample], capsys) -> None:
    bag = write_custom(tmp_path / "bag", samples[:1])
    rc = bag_eval.main([str(bag), "--out", str(tmp_path / "o1"), "--model", "tiny", "--weights", "/no/such.pth"])
    assert rc == 2 and "checkpoint '/no/such.pth' not found" in capsys.readouterr().err
    rep = json.loads((tmp_path / "o1" / "report.json").read_text())
    assert rep["results"]["frames_evaluated"] == 0 and "not found" in rep["meta"]["error"]
    rc = bag_eval.main([str(bag), "--out", str(tmp_path / "o2"), "--predictions-topic", PRED])
    assert rc == 2 and "--predictions-topic needs --vocabulary" in capsys.readouterr().err
