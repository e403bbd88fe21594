"""The interface packages built by scripts/build_interfaces.sh: importable, wire-compatible, idempotent build."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ros_helpers import ROOT, require_interfaces

# RIHS01 type hashes of upstream vision_msgs 4.1 (from its generated C type-description sources).
# Equal hashes = the same type on the wire: nodes built against the real vision_msgs interoperate with ours.
UPSTREAM_HASHES = {
    "Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "Detection2D": "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "BoundingBox2D": "RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "ObjectHypothesisWithPose": "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
}


def _share(pkg: str) -> Path:
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(pkg))


def test_generated_types_import_and_have_the_documented_fields():
    require_interfaces()
    from omg_seg_msgs.msg import Segment, SegmentArray
    from omg_seg_msgs.srv import RemoveTarget, SegmentPrompt, SegmentText, SetVocabulary

    assert set(Segment.get_fields_and_field_types()) == {
        "id", "class_id", "class_name", "score", "is_thing", "roi", "mask", "has_position", "position", "size",
        "orientation", "num_points"}
    assert Segment.get_fields_and_field_types()["mask"] == "sensor_msgs/Image"
    assert Segment.get_fields_and_field_types()["position"] == "geometry_msgs/Point"
    from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray

    assert Detection3D.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox3D", "id": "string"}
    assert BoundingBox3D.get_fields_and_field_types() == {"center": "geometry_msgs/Pose", "size": "geometry_msgs/Vector3"}
    assert Detection3DArray.get_fields_and_field_types()["detections"] == "sequence<vision_msgs/Detection3D>"
    assert SegmentArray.get_fields_and_field_types()["segments"] == "sequence<omg_seg_msgs/Segment>"
    req = SegmentPrompt.Request()
    assert {"points", "point_labels", "boxes", "image", "track"} <= set(req.get_fields_and_field_types())
    assert {"success", "message", "segments"} <= set(SegmentPrompt.Response.get_fields_and_field_types())
    assert {"text", "max_results", "image", "track"} <= set(SegmentText.Request.get_fields_and_field_types())
    assert {"things", "stuff"} == set(SetVocabulary.Request.get_fields_and_field_types())
    assert "id" in RemoveTarget.Request.get_fields_and_field_types()


@pytest.mark.parametrize("name", sorted(UPSTREAM_HASHES))
def test_vision_msgs_type_hashes_match_upstream(name):
    require_interfaces()
    desc = json.loads((_share("vision_msgs") / "msg" / f"{name}.json").read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in desc["type_hashes"]}
    assert hashes[f"vision_msgs/msg/{name}"] == UPSTREAM_HASHES[name]


def test_segment_array_round_trips_through_cdr():
    """The generated type support serialises and deserialises (what DDS and rosbag do)."""
    require_interfaces()
    from rclpy.serialization import deserialize_message, serialize_message
    from omg_seg_msgs.msg import Segment, SegmentArray

    msg = SegmentArray(task="panoptic", image_height=4, image_width=5)
    s = Segment(id=7, class_id=-1, class_name="box", score=0.5, is_thing=True)
    s.mask.height, s.mask.width, s.mask.encoding, s.mask.step = 1, 2, "mono8", 2
    s.mask.data = bytes([255, 0])
    msg.segments = [s]
    back = deserialize_message(serialize_message(msg), SegmentArray)
    assert back.segments[0].id == 7 and back.segments[0].class_id == -1
    assert bytes(back.segments[0].mask.data) == bytes([255, 0])


def test_build_script_is_idempotent_and_skips_the_build_when_up_to_date():
    require_interfaces()
    env = dict(os.environ, VENV=str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv"))))
    if not (Path(env["VENV"]) / "bin" / "python").exists():
        env["VENV"] = str(ROOT / ".venv")
    out = subprocess.run(["bash", str(ROOT / "scripts" / "build_interfaces.sh")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "omg_seg_msgs up to date" in out.stdout, out.stdout
    assert "building" not in out.stdout
