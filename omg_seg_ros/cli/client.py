"""A client node for the console tools (the demo, benchmarks): its own rclpy context, spun by a single-threaded
executor in a daemon thread (callbacks run in the spin thread: no hand-over to a pool thread per message; rclpy's
MultiThreadedExecutor spun busily in this process: the closed-loop benchmark ran at 3.5 frames/s with it, 27 with
the node's NodeExecutor, and the client's part of each round trip fell from ~2.4 to ~1.0 ms with this one), the
latest omg_seg diagnostics, and a blocking service call."""
from __future__ import annotations

import threading
import time
from typing import Any, Optional


class ClientNode:
    """Subclasses create their subscriptions after `super().__init__` (the executor already spins)."""

    def __init__(self, name: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Condition()  # a lock for the received state; subclasses notify it on arrivals
        self.diag: Optional[dict] = None  # key -> value of the latest omg_seg DiagnosticStatus
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if st.name.startswith("omg_seg"):
                with self.lock:
                    self.diag = {kv.key: kv.value for kv in st.values}

    def call(self, srv_type: Any, name: str, req: Any, timeout: float = 120.0) -> Any:
        """Call service `name` and wait for the answer (TimeoutError when it is absent or does not answer)."""
        cli = self.node.create_client(srv_type, name)
        try:
            if not cli.wait_for_service(timeout_sec=30.0):
                raise TimeoutError(f"service {name} not available")
            fut = cli.call_async(req)
            end = time.monotonic() + timeout
            while not fut.done():
                if time.monotonic() > end:
                    raise TimeoutError(f"{name} did not answer in {timeout} s")
                time.sleep(0.01)
            return fut.result()
        finally:
            self.node.destroy_client(cli)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


__all__ = ["ClientNode"]
