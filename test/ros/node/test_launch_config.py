"""launch/perception.launch.py, config/perception.yaml and config/perception.rviz agree with the node.

`launch` / `launch_ros` are not installable here (no PyPI wheels), so the launch file is checked statically:
it compiles, its arguments map onto real node parameters, its remappings onto the node's real topic names, its
executable onto a declared console entry. perception.yaml is also loaded by the node under test itself
(`--params-file`, see ros_helpers.start_node), which proves rclpy accepts every value and type.
"""
from __future__ import annotations

import ast
import re

import pytest
import yaml

from omg_seg_ros.params import all_params
from ros_helpers import ROOT

LAUNCH = ROOT / "launch" / "perception.launch.py"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _launch_constants() -> dict:
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def test_launch_file_compiles_and_defines_generate_launch_description():
    src = LAUNCH.read_text()
    compile(src, str(LAUNCH), "exec")
    tree = ast.parse(src)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_launch_arguments_are_node_parameters():
    consts = _launch_constants()
    params = {name for name, _, _ in all_params()}
    assert {"image_topic", "params_file", "model", "backend", "use_sim_time", "rviz"} <= set(consts["ARGUMENTS"])
    for name in consts["NODE_PARAMETERS"]:
        assert name in consts["ARGUMENTS"]
        assert name == "use_sim_time" or name in params, f"launch passes '{name}' but the node has no such parameter"
    defaults = {n: d for n, d, _ in all_params()}
    for name in set(consts["NODE_PARAMETERS"]) - {"use_sim_time"}:
        assert consts["ARGUMENTS"][name][0] == defaults[name], f"launch default of {name} differs from the node's"


def test_launch_remappings_and_executable_match_the_node():
    src = LAUNCH.read_text()
    node_src = (ROOT / "omg_seg_ros" / "node.py").read_text()
    topics_src = node_src + (ROOT / "omg_seg_ros" / "depth_input.py").read_text()
    for topic in re.findall(r'\("(~/[^"]+)"', src):
        assert f'"{topic}"' in topics_src, f"launch remaps {topic}, which the node does not use"
    exe = re.search(r'executable="([^"]+)"', src).group(1)
    setup = (ROOT / "setup.py").read_text()
    assert f'"{exe} = omg_seg_ros.node:main"' in setup
    assert 'name="omg_seg"' in src and re.search(r'NODE_NAME = "omg_seg"', node_src)


def test_perception_yaml_lists_every_parameter_with_the_node_default():
    """Every node parameter is in the YAML with the node's default; tracker fields (tracking.<field>, owned and
    documented by the tracker) may be left out, but any that is listed must match too."""
    data = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    flat = _flatten(data["/**"]["ros__parameters"])
    declared = {n: d for n, d, _ in all_params()}
    assert set(flat) <= set(declared), f"unknown parameters in the YAML: {set(flat) - set(declared)}"
    required = {n for n in declared if not n.startswith("tracking.")} | {"tracking.enabled"}
    assert required <= set(flat), f"missing from the YAML: {required - set(flat)}"
    for name, default in declared.items():
        if name not in flat:
            continue
        assert type(flat[name]) is type(default), f"{name}: YAML {flat[name]!r} vs node {default!r}"
        assert flat[name] == default, f"{name}: YAML {flat[name]!r} vs node default {default!r}"


def test_rviz_config_shows_the_overlay():
    cfg = yaml.safe_load((ROOT / "config" / "perception.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    overlay = [d for d in displays if d["Class"] == "rviz_default_plugins/Image" and d["Enabled"]]
    assert [d["Topic"]["Value"] for d in overlay] == ["/omg_seg/output/overlay"]
    # The node publishes outputs RELIABLE; a RELIABLE display matches it.
    assert overlay[0]["Topic"]["Reliability Policy"] == "Reliable"


def test_rviz_config_shows_the_3d_markers():
    cfg = yaml.safe_load((ROOT / "config" / "perception.rviz").read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    markers = [d for d in displays if d["Class"] == "rviz_default_plugins/MarkerArray" and d["Enabled"]]
    assert [d["Topic"]["Value"] for d in markers] == ["/omg_seg/output/markers"]
    from omg_seg_ros.msgs3d import MARKER_BOXES, MARKER_LABELS

    assert set(markers[0]["Namespaces"]) == {MARKER_BOXES, MARKER_LABELS}


@pytest.mark.parametrize("arg", ["image_topic", "params_file", "model", "backend", "use_sim_time", "rviz", "depth",
                                 "depth_topic", "camera_info_topic"])
def test_launch_documents_each_argument(arg):
    doc = ast.get_docstring(ast.parse(LAUNCH.read_text()))
    assert re.search(rf"^\s+{arg}\s", doc, re.M), f"launch docstring does not explain '{arg}'"
