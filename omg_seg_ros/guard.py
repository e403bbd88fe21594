"""The last-resort guard: no exception in a callback, timer, service or the worker may end the node's process.

Every expected failure has its own handling where it happens (a bad image is dropped and counted, a bad request
answered with `success: false`, a bad parameter refused). What still escapes is a bug: the guard logs it with its
traceback (throttled per place), counts it for /diagnostics ("callback_errors") and lets the node keep serving.
Without it, rclpy re-raises a callback's exception out of `executor.spin()` and the process exits.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, Optional


class Guard:
    """Wraps callables so that an exception is logged, counted and answered by `on_error` instead of raised."""

    def __init__(self, logger: Any, min_interval_s: float = 2.0) -> None:
        self.logger = logger
        self.count = 0
        self.last: str = ""
        self._lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._interval = min_interval_s

    def report(self, where: str, exc: BaseException) -> None:
        """Log `exc` (with traceback, at most once per `min_interval_s` per place) and count it."""
        with self._lock:
            self.count += 1
            self.last = f"{where}: {type(exc).__name__}: {exc}"
            now = time.monotonic()
            due = now - self._last_log.get(where, -1e9) >= self._interval
            if due:
                self._last_log[where] = now
        if due:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.logger.error(f"unexpected error in {where} (the node keeps running): {tb}")

    def wrap(self, where: str, fn: Callable, on_error: Optional[Callable[..., Any]] = None) -> Callable:
        """`fn` that never raises: on an exception it reports it and returns `on_error(*args)` (or None)."""
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the last resort: everything else is handled where it happens
                self.report(where, e)
                return on_error(*args, **kwargs) if on_error is not None else None
        guarded.__name__ = getattr(fn, "__name__", "guarded")
        return guarded


__all__ = ["Guard"]
