"""Tracker + targets on generated video (synthetic generator video mode) with a simulated detector.

The detector is `NoisyDetector` (ground truth with jittered masks, misses, false positives, class flips and
noisy embeddings), so these floors test the TRACKER LOGIC, not a model. Measured with these exact settings
(seed 3, 2 sequences x 30 frames, 320x240): IDF1 0.943, HOTA 0.739, IDSW/100f 0.0, VPQ(1,5) 0.681, target hit
rate 0.941; the same detections with ground-truth ids give IDF1 0.970. Floors sit a little below.
"""
from __future__ import annotations

import pytest

from omg_seg_core.cli.eval_video import evaluate, main
from omg_seg_core.tracking import TrackerConfig
from omg_seg_core.tracking.noisy_detections import NoisyDetector

synth = pytest.importorskip("omg_seg_core.data.synth")


def run(cfg: TrackerConfig) -> dict:
    world = synth.world
    sim = NoisyDetector(list(world.CLASS_NAMES), len(world.THING_CLASSES), seed=3)
    return evaluate(lambda f: sim(f.to_segments()), None, sequences=2, length=30, seed=3, split="heldout",
                    size=(240, 320), n_targets=2, fps=10.0, tracker_cfg=cfg, windows=(1, 5),
                    on_reset=sim.reset, log=lambda s: None)


def test_generated_video_floors_gt_noisy():
    m = run(TrackerConfig())
    assert m["IDF1"] >= 0.90
    assert m["IDF1"] >= m["oracle_ids"]["IDF1"] - 0.05   # little lost to association on these detections
    assert m["IDSW_per_100_frames"] <= 2.0
    assert m["HOTA"] >= 0.70 and m["vpq"] >= 0.62
    assert m["target_visible_frames"] >= 40 and m["target_iou50_fraction"] >= 0.88


def test_cli_writes_json(tmp_path):
    out = tmp_path / "video.json"
    assert main(["--source", "gt-noisy", "--sequences", "1", "--length", "6", "--seed", "1", "--windows", "1", "2",
                 "--tracker", "n_init=1", "--out", str(out)]) == 0
    import json

    d = json.loads(out.read_text())
    assert d["source"] == "gt-noisy" and d["tracker_config"]["n_init"] == 1 and d["noise"]["p_drop"] > 0
    assert 0.0 <= d["metrics"]["IDF1"] <= 1.0 and set(d["metrics"]["per_window"]) == {"1", "2"}
    assert all(0.0 <= v <= 1.0 for v in d["metrics"]["target_request_ious"])


def test_noisy_detector_embedding_statistics_match_its_documentation():
    import numpy as np

    from tracking_scenes import embeddings, frame

    sim = NoisyDetector(["box", "ball", "cup"], 3, seed=0)
    gt = frame([(0, 10, 10, 30, 30, embeddings(1)[0]), (0, 60, 10, 30, 30, embeddings(1)[0])])
    gt.track_ids[:] = [1, 2]
    sim.cfg.p_drop = sim.cfg.fp_rate = sim.cfg.p_class_flip = 0.0
    e = [sim(gt).embeddings for _ in range(20)]
    same = np.mean([float(e[t][0] @ e[t + 1][0]) for t in range(19)])
    other = np.mean([float(e[t][0] @ e[t][1]) for t in range(20)])
    assert 0.7 <= same <= 0.9 and 0.15 <= other <= 0.45
