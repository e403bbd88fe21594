"""Export checks: opset, onnx.checker, embedded metadata, the TensorRT op list check, and bad inputs (unsupported
resolution, ONNX for another model, corrupt files) giving clear errors or an automatic re-export."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from omg_seg_core.config import TINY
from omg_seg_core.runtime.onnx_export import (SUPPORTED_OPS_FILE, UnsupportedOpsError, check_trt_ops, export_onnx,
                                              graph_ops, load_supported_ops)
from omg_seg_core.runtime.onnx_io import (OPSET, OnnxBundle, OnnxCorruptError, OnnxMismatchError, check_resolution,
                                          config_sha256, padded_size_for, read_onnx_metadata, validate_onnx,
                                          weights_sha256)
from omg_seg_core.runtime.ort_backend import OrtBackend, ensure_bundle


def test_export_is_valid_opset17_with_metadata_and_trt_ops(tiny_bundle, tiny_model):
    assert not tiny_model.training  # export must not leave the model in training mode (BatchNorm!)
    assert tiny_bundle.meta["opset"] == OPSET == 17
    supported = load_supported_ops()
    for graph in ("image", "prompt"):
        path = tiny_bundle.path(graph)
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert {o.domain: o.version for o in model.opset_import}.get("", None) == 17
        ops = check_trt_ops(model)  # raises on anything outside the list
        assert set(ops) <= supported and "GridSample" in graph_ops(onnx.load(str(tiny_bundle.path("image"))))
        meta = validate_onnx(path, TINY, weights_sha256(tiny_model), (128, 160), graph)
        assert meta["model"] == "omg_seg_tiny" and meta["graph"] == graph
        assert tiny_bundle.meta["ops"][graph] == dict(sorted(ops.items()))  # manifest lists every op used
    names = [i.name for i in onnx.load(str(tiny_bundle.path("prompt")), load_external_data=False).graph.input]
    assert names == ["mask_features", "memory_s32", "memory_s16", "memory_s8", "boxes", "valid", "image_size"]


def test_supported_op_list_is_data_with_its_source():
    text = SUPPORTED_OPS_FILE.read_text()
    assert "onnx-tensorrt" in text and "operators.md" in text  # the source is cited in the file
    ops = load_supported_ops()
    assert {"GridSample", "LayerNormalization", "Conv", "MatMul", "Softmax"} <= ops
    assert not {"Unique", "SequenceAt", "Col2Im", "Attention"} & ops


def _tiny_graph(op: str, **attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inputs = ["x"] if op != "Resize" else ["x", "", "scales"]
    inits = [] if op != "Resize" else [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])]
    node = helper.make_node(op, inputs, ["y"], name=f"{op.lower()}_0", **attrs)
    return helper.make_model(helper.make_graph([node], "g", [x], [y], inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_op_check_names_unsupported_ops_and_attributes():
    check_trt_ops(_tiny_graph("Relu"))
    with pytest.raises(UnsupportedOpsError, match=r"Col2Im \(x1\)"):
        check_trt_ops(_tiny_graph("Col2Im"))
    with pytest.raises(UnsupportedOpsError, match="mode=cubic"):
        check_trt_ops(_tiny_graph("Resize", mode="cubic"))
    check_trt_ops(_tiny_graph("Resize", mode="linear"))
    custom = _tiny_graph("Relu")
    custom.graph.node[0].domain = "com.microsoft"
    with pytest.raises(UnsupportedOpsError, match="com.microsoft::Relu"):
        check_trt_ops(custom)


@pytest.mark.parametrize("size, match", [((100, 160), "multiple of 32"), ((32, 160), "between 64"),
                                         ((128, 8192), "between 64")])
def test_unsupported_resolution_is_refused_before_export(tiny_model, tmp_path, size, match):
    with pytest.raises(ValueError, match=match):
        export_onnx(tiny_model, tmp_path, size)
    assert not any(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(TypeError):
        check_resolution(TINY, 128.0, 160)


def test_padded_size_for_camera_aspects():
    assert padded_size_for(320, 4 / 3) == (256, 320)    # 240 -> 256
    assert padded_size_for(1024, 16 / 9) == (576, 1024)
    assert padded_size_for(640, 3 / 4) == (640, 480)


def test_onnx_for_another_model_is_refused(copy_bundle, tiny_model):
    for change in ({"num_queries": TINY.num_queries + 1}, {"num_encoder_levels": 2}):
        with pytest.raises(OnnxMismatchError, match="architecture config differs"):
            validate_onnx(copy_bundle.path("image"), dataclasses.replace(TINY, **change))
    # a field added later hashes as before at the value earlier models had: their bundles keep validating
    before = {k: v for k, v in TINY.to_dict().items() if k != "num_encoder_levels"}
    assert config_sha256(TINY) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    with pytest.raises(OnnxMismatchError, match="model 'omg_seg_tiny' != configured 'omg_seg_convl'"):
        copy_bundle.validate(dataclasses.replace(TINY, name="omg_seg_convl"))
    with pytest.raises(OnnxMismatchError, match="input size"):
        copy_bundle.validate(TINY, None, (256, 320))
    with pytest.raises(OnnxMismatchError, match="other weights"):
        copy_bundle.validate(TINY, "0" * 64)
    with pytest.raises(OnnxMismatchError, match="holds the 'prompt' graph"):
        validate_onnx(copy_bundle.path("prompt"), graph="image")
    plain = copy_bundle.root / "plain.onnx"
    onnx.save(_tiny_graph("Relu"), str(plain))
    with pytest.raises(OnnxMismatchError, match="not exported by omg-seg-export"):
        read_onnx_metadata(plain)


def test_corrupt_onnx_and_manifest_give_clear_errors(copy_bundle):
    path = copy_bundle.path("image")
    path.write_bytes(path.read_bytes()[:5000])  # truncated download / disk full
    with pytest.raises(OnnxCorruptError, match="image.onnx"):
        OrtBackend(copy_bundle, threads=1)
    (copy_bundle.root / "manifest.json").write_text("{")
    with pytest.raises(OnnxCorruptError, match="manifest.json unreadable"):
        OnnxBundle.load(copy_bundle.root)
    (copy_bundle.root / "manifest.json").unlink()
    with pytest.raises(OnnxCorruptError, match="manifest.json missing"):
        OnnxBundle.load(copy_bundle.root)


def test_cached_export_is_reused_and_rebuilt_when_corrupt_or_stale(tiny_model, tmp_path):
    msgs: list[str] = []
    b1 = ensure_bundle(tiny_model, (64, 96), max_prompts=2, root=tmp_path, slim=False, progress=msgs.append)
    assert any("exporting" in m for m in msgs)
    msgs.clear()
    b2 = ensure_bundle(tiny_model, (64, 96), max_prompts=2, root=tmp_path, slim=False, progress=msgs.append)
    assert b2.root == b1.root and not msgs  # valid cache: no export
    # corrupt graph in the cache -> deleted and exported again, once, then usable
    b1.path("prompt").write_bytes(b"\x00garbage")
    b3 = ensure_bundle(tiny_model, (64, 96), max_prompts=2, root=tmp_path, slim=False, progress=msgs.append)
    assert any("unusable" in m for m in msgs)
    OrtBackend(b3, threads=1).run_image(torch.zeros(1, 3, 64, 96))
    # the manifest claims other weights (files copied from another robot) -> re-export
    meta = json.loads((b3.root / "manifest.json").read_text())
    meta["weights_sha256"] = "f" * 64
    (b3.root / "manifest.json").write_text(json.dumps(meta))
    msgs.clear()
    ensure_bundle(tiny_model, (64, 96), max_prompts=2, root=tmp_path, slim=False, progress=msgs.append)
    assert any("other weights" in m for m in msgs)
