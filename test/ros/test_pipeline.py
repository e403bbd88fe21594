"""The node's ROS-free engine: latest-frame mailbox, statistics, prompt validation."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from omg_seg_ros.pipeline import Frame, FrameMailbox, RequestError, Stats, validate_prompts


def _frame(i: int) -> Frame:
    return Frame(msg=None, header=None, stamp_s=float(i), received=time.monotonic(), index=i)


def test_mailbox_keeps_only_the_latest_and_counts_drops():
    box = FrameMailbox()
    assert box.put(_frame(0)) is False
    assert box.put(_frame(1)) is True
    assert box.put(_frame(2)) is True
    assert box.take(0.01).index == 2
    assert box.take(0.01) is None
    assert (box.received, box.dropped) == (3, 2)


def test_mailbox_wakes_a_waiting_worker_and_close_releases_it():
    box = FrameMailbox()
    got = []
    t = threading.Thread(target=lambda: got.append(box.take(10.0)))
    t.start()
    time.sleep(0.05)
    box.put(_frame(7))
    t.join(2.0)
    assert got and got[0].index == 7
    t = threading.Thread(target=lambda: got.append(box.take(10.0)))
    t.start()
    box.close()
    t.join(2.0)
    assert not t.is_alive() and got[-1] is None


def test_stats_window_is_bounded():
    st = Stats(window=10)
    for i in range(100):
        st.record(float(i), 1.0)
    snap = st.snapshot()
    assert len(st.latency_ms) == 10 and snap["processed"] == 100
    assert snap["latency_p50_ms"] == pytest.approx(np.percentile(np.arange(90, 100), 50))


@pytest.mark.parametrize("points,labels,boxes,match", [
    ([], [], [], "no prompt"),
    ([float("nan"), 3.0], [], [], "NaN"),
    ([5.0, 3.0], [], [float("inf"), 0, 4, 4], "NaN or infinite"),
    ([320.0, 10.0], [], [], "outside"),
    ([-1.0, 10.0], [], [], "outside"),
    ([1.0, 2.0, 3.0], [], [], "multiple of 2"),
    ([1.0, 2.0], [1, 0], [], "2 values for 1 points"),
    ([1.0, 2.0], [2], [], "1 \\(foreground\\) or 0"),
    ([], [1], [0, 0, 5, 5], "no points"),
    ([], [], [1, 2, 3], "multiple of 4"),
    ([], [], [10, 10, 5, 20], "empty or inverted"),
    ([], [], [400, 10, 500, 20], "outside"),
])
def test_bad_prompts_are_rejected_with_a_reason(points, labels, boxes, match):
    with pytest.raises(RequestError, match=match):
        validate_prompts(points, labels, boxes, (240, 320))


def test_valid_prompts_are_shaped_and_clipped():
    pts, lab, box = validate_prompts([10, 20, 30, 40], [1, 0], [-5, -5, 400, 100], (240, 320))
    assert pts.shape == (2, 2) and lab.tolist() == [1, 0]
    assert box.tolist() == [[0, 0, 320, 100]]
    pts, lab, box = validate_prompts([10, 20], [], [], (240, 320))
    assert lab.tolist() == [1] and box is None


def test_node_parameters_start_from_the_checkpoints_tuned_thresholds():
    """With the node's default parameters the shipped model runs with the iou_thr its checkpoint records (0.6);
    an explicit value wins; a negative fraction at run time goes back to the checkpoint's value."""
    from omg_seg_ros.loader import build_pipeline, threshold_overrides
    from omg_seg_ros.params import all_params

    values = {name: default for name, default, _ in all_params()}
    assert values["iou_thr"] < 0
    pipe = build_pipeline(values)
    assert pipe.predictor.thresholds.iou_thr == 0.6
    pipe.set_thresholds(**threshold_overrides({"iou_thr": 0.75, "mask_threshold": 0.4, "task": "semantic"}))
    assert pipe.predictor.thresholds.iou_thr == 0.75 and pipe.predictor.thresholds.mask_threshold == 0.4
    pipe.set_thresholds(**threshold_overrides({"iou_thr": -1.0}))
    assert pipe.predictor.thresholds.iou_thr == 0.6
    assert build_pipeline({**values, "iou_thr": 0.8}).predictor.thresholds.iou_thr == 0.8


def test_cpu_threads_and_spinning_parameters_reach_the_inference_threads():
    import torch

    from omg_seg_ros.loader import build_pipeline
    from omg_seg_ros.params import all_params, validate

    before = torch.get_num_threads()
    try:
        values = {name: default for name, default, _ in all_params()}
        build_pipeline({**values, "cpu_threads": 1})
        assert torch.get_num_threads() == 1
        pipe = build_pipeline({**values, "cpu_threads": 1, "backend": "onnxruntime"})
        (ort_backend,) = pipe.predictor.backend._by_size.values()  # the first size is built at load
        opts = ort_backend._sessions["image"].get_session_options()
        assert opts.intra_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # the default: sleep
        pipe = build_pipeline({**values, "cpu_threads": 1, "backend": "onnxruntime", "onnxruntime_spinning": True})
        (ort_backend,) = pipe.predictor.backend._by_size.values()
        assert ort_backend._sessions["image"].get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning") == "1"
        build_pipeline(values)  # cpu_threads 0 again: back to the count torch had before the first pipeline
        from omg_seg_ros import loader

        assert torch.get_num_threads() == loader._initial_torch_threads
    finally:
        torch.set_num_threads(before)
    for bad in (-1, 1000):
        with pytest.raises(ValueError, match="cpu_threads"):
            validate("cpu_threads", bad)
