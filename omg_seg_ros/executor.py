"""The node's executor: rclpy's MultiThreadedExecutor without its busy loop under load.

rclpy 7 (Jazzy) re-yields every callback task that is queued in the executor's thread pool but not yet running
("tasks in-progress"), and `_spin_once_impl` submits it to the pool again and scans its list of futures, without
waiting. When the pool threads are slow to start a task (a Python-heavy worker holds the GIL), the spin thread
loops on those tasks holding the GIL itself, which slows the pool threads further: measured with two 30 Hz cameras
on 2 cores, 4 000-6 000 spins/s, thousands of pending futures, and 5 of 60 image callbacks per second run. Here a
task that is already queued is not submitted again; the spin thread sleeps 1 ms instead, so the pool threads get
the GIL and the task runs. Everything else is MultiThreadedExecutor's.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from rclpy.executors import (ConditionReachedException, ExternalShutdownException, MultiThreadedExecutor,
                             ShutdownException, TimeoutException)

#: How long the spin thread yields the GIL when the only ready work is a task already queued in the pool.
QUEUED_TASK_SLEEP_S = 0.001


class NodeExecutor(MultiThreadedExecutor):
    """MultiThreadedExecutor that never submits a queued task twice (module docstring)."""

    def _spin_once_impl(self, timeout_sec: Optional[float] = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            handler, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException, ConditionReachedException):
            return
        if handler in self._futures:  # already waiting for a pool thread: let it have the GIL
            time.sleep(QUEUED_TASK_SLEEP_S)
        else:
            self._executor.submit(handler)
            self._futures.append(handler)
        for future in self._futures[:]:
            if future.done():
                self._futures.remove(future)
                future.result()  # raise any exception of the callback


__all__ = ["NodeExecutor", "QUEUED_TASK_SLEEP_S"]
