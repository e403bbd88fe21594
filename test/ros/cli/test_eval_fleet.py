"""`omg-seg-eval-fleet` on a local 2-worker Ray over 3 small generated bags (+ 1 corrupt): the merged report equals
a single-process evaluation of the same bags exactly, the corrupt bag fails alone (exit status 1), and a re-run
after an interruption evaluates only the bags not finished before."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")

from omg_seg_core.config import default_checkpoint_path  # noqa: E402
from omg_seg_ros.cli import fleet_eval, make_bag  # noqa: E402

if default_checkpoint_path("omg_seg_tiny") is None:
    pytest.skip("models/omg_seg_tiny.pth absent: an untrained model has new random weights in every worker",
                allow_module_level=True)

EVAL = ["--", "--model", "tiny", "--vocabulary", "robot_workspace", "--video"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bags")
    for i in range(3):
        assert make_bag.main(["--out", str(root / f"bag{i}"), "--frames", "3", "--seed", str(i), "--size",
                              "96x72", "--video", "--prompts"]) == 0
    bad = root / "bag_corrupt"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, bag\n")
    (bad / "bag_corrupt_0.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 8)
    return root


@pytest.fixture(scope="module")
def local_ray() -> Any:
    """One local Ray (2 CPUs) for the module; the fleet joins it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 << 20)
    yield
    ray.shutdown()


def _results(out: Path) -> tuple[dict, list]:
    """report.json results and frame records without wall-clock latencies (the only non-deterministic part)."""
    rep = json.loads((out / "report.json").read_text())
    res = {k: v for k, v in rep["results"].items() if k != "latency_ms"}
    frames = [{k: v for k, v in f.items() if k != "latency_ms"} for f in rep["frames"]]
    return res, frames


def test_merged_equals_single_process_and_corrupt_bag_fails_alone(bags: Path, local_ray: Any,
                                                                   tmp_path: Path) -> None:
    fleet_out, ref_out = tmp_path / "fleet", tmp_path / "single"
    assert fleet_eval.main([str(bags), "--out", str(fleet_out), "--workers", "2", *EVAL]) == 1
    assert fleet_eval.main([str(bags), "--out", str(ref_out), "--single-process", *EVAL]) == 1
    fleet = json.loads((fleet_out / "fleet.json").read_text())
    assert {n: b["status"] for n, b in fleet["bags"].items()} == {
        "bag0": "done", "bag1": "done", "bag2": "done", "bag_corrupt": "failed"}
    assert fleet["bags"]["bag_corrupt"]["error"]  # the reader's message: why this bag failed
    assert fleet["bags_merged"] == ["bag0", "bag1", "bag2"]
    merged, ref = _results(fleet_out), _results(ref_out)
    assert merged == ref  # exact: counts, exact sums, same COCO data, same sequences
    res = merged[0]
    assert res["frames_evaluated"] == 9 and res["panoptic"]["all"]["n"] > 0 and res["mask_ap"]["num_gt"] > 0
    assert res["tracking"]["frames"] == 9 and "IDF1" in res["tracking"] and res["prompts"]["count"] > 0
    assert {f["source"] for f in merged[1]} == {"bag0", "bag1", "bag2"}
    for name in ("bag0", "bag1", "bag2"):  # per-bag reports with the same plots as omg-seg-eval
        d = fleet_out / "bags" / name
        assert {"report.json", "report.md", "per_class_pq.png", "latency_hist.png", "outcome.pkl"} <= {
            p.name for p in d.iterdir()}
        assert _results(d)[0]["frames_evaluated"] == 3
    assert "error" in json.loads((fleet_out / "bags" / "bag_corrupt" / "report.json").read_text())["meta"]
    assert {"per_class_pq.png", "latency_hist.png", "worst_frames.png"} <= {p.name for p in fleet_out.iterdir()}


def test_interrupted_run_resumes_with_the_unfinished_bags_only(bags: Path, local_ray: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    good = [str(bags / f"bag{i}") for i in range(3)]
    out = tmp_path / "fleet"
    real_record, calls = fleet_eval.record, []

    def record_then_ctrl_c(o_out: Path, o: Any) -> None:
        real_record(o_out, o)
        calls.append(o.name)
        raise KeyboardInterrupt  # Ctrl-C right after the first bag was recorded

    monkeypatch.setattr(fleet_eval, "record", record_then_ctrl_c)
    assert fleet_eval.main([*good, "--out", str(out), "--workers", "2", *EVAL]) == 130
    first = calls[0]
    status = json.loads((out / "fleet.json").read_text())
    assert status["interrupted"] and status["bags"][first]["status"] == "done"
    monkeypatch.setattr(fleet_eval, "record", real_record)
    stamp = (out / "bags" / first / "outcome.pkl").stat().st_mtime_ns
    assert fleet_eval.main([*good, "--out", str(out), "--workers", "2", *EVAL]) == 0
    status = json.loads((out / "fleet.json").read_text())
    assert status["bags"][first]["status"] == "done earlier (resumed)"
    assert sorted(n for n, b in status["bags"].items() if b["status"] == "done") == sorted(
        {"bag0", "bag1", "bag2"} - {first})
    assert (out / "bags" / first / "outcome.pkl").stat().st_mtime_ns == stamp  # not evaluated again
    assert _results(out)[0]["frames_evaluated"] == 9
    # A third run has nothing left to evaluate and writes the same merged report.
    before = _results(out)
    assert fleet_eval.main([*good, "--out", str(out), "--workers", "2", *EVAL]) == 0
    assert _results(out) == before
    assert all(b["status"] == "done earlier (resumed)" for b in json.loads((out / "fleet.json").read_text())["bags"].values())
