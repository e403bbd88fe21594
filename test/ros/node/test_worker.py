"""The node's ROS-free worker side: latest-frame mailbox, statistics; the session the loader builds."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from omg_seg_ros.worker import Frame, FrameMailbox, Inbox, Stats


def _frame(i: int) -> Frame:
    return Frame(msg=None, header=None, stamp_s=float(i), received=time.monotonic(), index=i)


def test_mailbox_keeps_only_the_latest_and_counts_drops():
    box = FrameMailbox()
    assert box.put(_frame(0)) is False
    assert box.put(_frame(1)) is True
    assert box.put(_frame(2)) is True
    assert box.pop().index == 2
    assert box.pop() is None
    assert (box.received, box.dropped) == (3, 2)


def test_inbox_wakes_a_waiting_worker_and_close_releases_it():
    inbox = Inbox(2)
    got = []
    t = threading.Thread(target=lambda: got.append(inbox.gather(10.0, 0.0)))
    t.start()
    time.sleep(0.05)
    inbox.boxes[1].put(_frame(7))
    t.join(2.0)
    assert got and got[0][0] is None and got[0][1].index == 7
    t = threading.Thread(target=lambda: got.append(inbox.gather(10.0, 0.0)))
    t.start()
    inbox.close()
    t.join(2.0)
    assert not t.is_alive() and got[-1] == [None, None]


def test_stats_window_is_bounded():
    st = Stats(window=10)
    for i in range(100):
        st.record(float(i), 1.0)
    snap = st.snapshot()
    assert len(st.latency_ms) == 10 and snap["processed"] == 100
    assert snap["latency_p50_ms"] == pytest.approx(np.percentile(np.arange(90, 100), 50))


def test_node_parameters_start_from_the_checkpoints_tuned_thresholds():
    """With the node's default parameters the shipped model runs with the iou_thr its checkpoint records (0.6);
    an explicit value wins; a negative fraction at run time goes back to the checkpoint's value."""
    from omg_seg_ros.loader import build_session, threshold_overrides
    from omg_seg_ros.params import all_params

    values = {name: default for name, default, _ in all_params()}
    assert values["iou_thr"] < 0
    pipe = build_session(values)
    assert pipe.predictor.thresholds.iou_thr == 0.6
    pipe.set_thresholds(**threshold_overrides({"iou_thr": 0.75, "mask_threshold": 0.4, "task": "semantic"}))
    assert pipe.predictor.thresholds.iou_thr == 0.75 and pipe.predictor.thresholds.mask_threshold == 0.4
    pipe.set_thresholds(**threshold_overrides({"iou_thr": -1.0}))
    assert pipe.predictor.thresholds.iou_thr == 0.6
    assert build_session({**values, "iou_thr": 0.8}).predictor.thresholds.iou_thr == 0.8


def test_cpu_threads_and_spinning_parameters_reach_the_inference_threads():
    import torch

    from omg_seg_ros.loader import build_session
    from omg_seg_ros.params import all_params, validate

    before = torch.get_num_threads()
    try:
        values = {name: default for name, default, _ in all_params()}
        build_session({**values, "cpu_threads": 1})
        assert torch.get_num_threads() == 1
        pipe = build_session({**values, "cpu_threads": 1, "backend": "onnxruntime"})
        (ort_backend,) = pipe.predictor.backend._by_size.values()  # the first size is built at load
        opts = ort_backend._sessions["image"].get_session_options()
        assert opts.intra_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # the default: sleep
        pipe = build_session({**values, "cpu_threads": 1, "backend": "onnxruntime", "onnxruntime_spinning": True})
        (ort_backend,) = pipe.predictor.backend._by_size.values()
        assert ort_backend._sessions["image"].get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning") == "1"
        build_session(values)  # cpu_threads 0 again: back to the count torch had before the first pipeline
        from omg_seg_ros import loader

        assert torch.get_num_threads() == loader._initial_torch_threads
    finally:
        torch.set_num_threads(before)
    for bad in (-1, 1000):
        with pytest.raises(ValueError, match="cpu_threads"):
            validate("cpu_threads", bad)


# ---- several cameras: the Inbox ------------------------------------------------------------------------------------
def test_inbox_takes_the_newest_frame_of_every_camera_that_has_one():
    from omg_seg_ros.worker import Inbox

    inbox = Inbox(3)
    front, left, right = inbox.boxes
    front.put(_frame(1))
    front.put(_frame(2))
    right.put(_frame(7))
    got = inbox.gather(timeout=0.01, window=0.0)
    assert [f.index if f else None for f in got] == [2, None, 7]
    assert front.dropped == 1 and inbox.gather(timeout=0.01, window=0.0) == [None, None, None]


def test_inbox_waits_the_window_only_for_live_cameras():
    from omg_seg_ros.worker import Inbox

    inbox = Inbox(2)
    front, right = inbox.boxes
    # right delivered recently (live): a frame of front waits up to the window for right's next one
    right.put(_frame(0))
    inbox.gather(timeout=0.01, window=0.0)
    threading.Timer(0.05, lambda: right.put(_frame(1))).start()
    front.put(_frame(5))
    t0 = time.monotonic()
    got = inbox.gather(timeout=1.0, window=0.5)
    assert [f.index for f in got] == [5, 1] and time.monotonic() - t0 < 0.4
    # right went silent longer than live_s: front is not held back at all
    right.last_put = time.monotonic() - 10.0
    front.put(_frame(6))
    t0 = time.monotonic()
    got = inbox.gather(timeout=1.0, window=0.5, live_s=1.0)
    assert got[0].index == 6 and got[1] is None and time.monotonic() - t0 < 0.1
    # a live camera that does not deliver in time costs at most the window
    right.last_put = time.monotonic()
    front.put(_frame(7))
    t0 = time.monotonic()
    got = inbox.gather(timeout=1.0, window=0.1)
    assert got[0].index == 7 and got[1] is None and 0.08 <= time.monotonic() - t0 < 0.5


def test_inbox_close_releases_a_waiting_worker():
    from omg_seg_ros.worker import Inbox

    inbox = Inbox(2)
    got = []
    t = threading.Thread(target=lambda: got.append(inbox.gather(timeout=10.0, window=1.0)))
    t.start()
    time.sleep(0.05)
    inbox.close()
    t.join(2.0)
    assert not t.is_alive() and got == [[None, None]]
    inbox.reopen()
    inbox.boxes[1].put(_frame(3))
    assert inbox.gather(timeout=0.01, window=0.0)[1].index == 3


def test_camera_names_are_checked():
    from omg_seg_ros.params import check_cameras

    assert check_cameras([""], 8) == [""] and check_cameras(["front", "left_2"], 8) == ["front", "left_2"]
    for bad, match in (([], "at least one"), (["a", "a"], "duplicate"), (["", "front"], "only alone"),
                       (["9x"], "not a valid"), (["a b"], "not a valid"), (["a__b"], "not a valid"),
                       (["a/b"], "not a valid"), (["a", "b", "c"], "limit 2")):
        with pytest.raises(ValueError, match=match):
            check_cameras(bad, 2)


def test_post_thread_gets_its_own_torch_threads_and_no_other_thread_changes():
    """own_torch_threads (the node's `postprocess_threads`): the pool thread runs with its own count; the calling
    thread and threads started later keep the process's count (torch.set_num_threads alone would change both)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from omg_seg_ros.pipeline import own_torch_threads

    def in_new_thread() -> int:
        got = []
        t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
        t.start()
        t.join()
        return got[0]

    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            own_torch_threads(pool, want)
            assert pool.submit(torch.get_num_threads).result() == want
            assert torch.get_num_threads() == before
            assert in_new_thread() == before
            assert pool.submit(lambda: float(torch.ones(64, 64).matmul(torch.ones(64, 64)).sum())).result() == 64 ** 3
            assert pool.submit(torch.get_num_threads).result() == want  # a parallel op does not re-initialise it
    finally:
        torch.set_num_threads(before)
