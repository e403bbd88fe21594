"""benchmarks/profile_graph.py: where the image graph's time goes, per module, with onnxruntime's and torch's
profilers. The naming rules are checked on written-out cases; one short real run of both profilers checks that
their rows name the same modules (the exporter's scopes) and add up."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "profile_graph.py"


@pytest.fixture(scope="module")
def pg():
    spec = importlib.util.spec_from_file_location("profile_graph", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_module_names_follow_the_onnx_exporter(pg):
    assert pg.label("head.transformer_decoder.layers.0") == "layers.0"
    assert pg.label("pixel_decoder.encoder") == "encoder"
    assert pg.label("backbone") == "backbone"
    assert pg.node_module("/head/layers.0/ffn/layers/layers.0/MatMul", 2) == "head/layers.0"
    assert pg.node_module("/head/layers.0/ffn/layers/layers.0/MatMul", 1) == "head"
    assert pg.node_module("/head/MatMul_3", 2) == "head"  # an op the head runs itself
    assert pg.node_module("SkipLayerNormalization_token_42", 2) == pg.UNSCOPED
    assert pg.node_module("/Concat", 2) == pg.UNSCOPED  # the root's own op


def test_ort_tables_sum_kernel_events_per_run(pg):
    events = [
        {"cat": "Session", "name": "model_run", "dur": 999},
        {"cat": "Node", "name": "/backbone/body/conv_stem/Conv_kernel_time", "dur": 3000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "/backbone/body/conv_stem/Conv_fence_before", "dur": 50, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "/pixel_decoder/encoder/layers.0/self_attn/GridSample_kernel_time", "dur": 1000,
         "args": {"op_name": "GridSample"}},
        {"cat": "Node", "name": "ReorderOutput_token_1_kernel_time", "dur": 500, "args": {"op_name": "ReorderOutput"}},
        {"cat": "Node", "name": "/backbone/body/blocks.1/Conv_kernel_time", "dur": 2000, "args": {"op_name": "Conv"}},
    ]
    modules, ops, total = pg.ort_tables(events, depth=2, runs=2)
    assert modules == {"backbone/body": 2.5, "pixel_decoder/encoder": 0.5, pg.UNSCOPED: 0.25}
    assert ops == {"Conv": 2.5, "GridSample": 0.5, "ReorderOutput": 0.25}
    assert total == pytest.approx(3.25)
    assert list(modules) == ["backbone/body", "pixel_decoder/encoder", pg.UNSCOPED]  # largest first


def test_both_profilers_on_the_shipped_model(tmp_path):
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--runs", "2", "--warmup", "1", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())["backends"]
    ort, pt = res["onnxruntime"], res["torch"]
    assert sum(ort["modules"].values()) == pytest.approx(ort["kernel_ms"])
    assert sum(ort["ops"].values()) == pytest.approx(ort["kernel_ms"])
    # the same module paths from both: the torch rows follow the exporter's scope names
    named = {"backbone/body", "pixel_decoder/encoder", "head/layers.0", "head/layers.2"}
    for rows in (ort["modules"], pt["modules"]):
        assert named <= set(rows), sorted(rows)
        assert all(rows[m] > 0 for m in named), rows
    assert min(pt["modules"].values()) > -0.05, pt["modules"]  # a parent's own time never below its children's
    assert "GridSample" in ort["ops"] and "aten::grid_sampler_2d" in pt["ops"]  # the deformable encoder's sampling
