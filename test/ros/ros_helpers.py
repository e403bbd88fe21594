"""Helpers for tests over REAL DDS: a client node spinning in a background executor, message collectors,
service/parameter/lifecycle calls, and the node under test in its own process (as deployed).

Imported by conftest.py and the test modules (`from ros_helpers import ...`; test/ros is on sys.path).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import pytest
import rclpy

ROOT = Path(__file__).resolve().parents[2]

DISCOVERY_TIMEOUT = 20.0   # >= 10 s: discovery on a loaded machine occasionally takes seconds
NODE_START_TIMEOUT = 180.0  # model load + text embeddings on 2 shared cores


def require_interfaces() -> None:
    try:
        import omg_seg_msgs.msg  # noqa: F401
        import vision_msgs.msg  # noqa: F401
    except ImportError as e:
        pytest.fail(f"interface packages are not built ({e}); run scripts/build_interfaces.sh", pytrace=False)


class Client:
    """A client node on its own context, spun by the node's executor (omg_seg_ros/executor.py: rclpy's
    MultiThreadedExecutor without its busy loop) in a daemon thread."""

    def __init__(self) -> None:
        from omg_seg_ros.executor import NodeExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"omg_seg_test_{os.getpid()}", context=self.context)
        self.executor = NodeExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._stopping = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        """`executor.spin()` that survives a test destroying a publisher or subscription while the executor waits
        on it: rclpy then raises InvalidHandle from the wait set (seen for a publisher's QoS event handler), which
        killed the spin thread, so every later service call of the session timed out. The next wait no longer
        holds the destroyed entity."""
        from rclpy.exceptions import InvalidHandle
        from rclpy.executors import ShutdownException

        while not self._stopping and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except InvalidHandle:
                continue
            except ShutdownException:
                break

    def close(self) -> None:
        # Order matters: executor, node, context; exiting with a spinning executor aborts the process.
        self._stopping = True
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def collector(self, msg_type, topic: str, qos: Any = 10) -> "Collector":
        return Collector(self.node, msg_type, topic, qos)

    def call(self, srv_type, name: str, request, timeout: float = 60.0):
        cli = self.node.create_client(srv_type, name)
        try:
            if not cli.wait_for_service(timeout_sec=DISCOVERY_TIMEOUT):
                raise TimeoutError(f"service {name} not available after {DISCOVERY_TIMEOUT} s")
            fut = cli.call_async(request)
            end = time.monotonic() + timeout
            while not fut.done():
                if time.monotonic() > end:
                    raise TimeoutError(f"service {name} did not answer within {timeout} s")
                time.sleep(0.01)
            return fut.result()
        finally:
            self.node.destroy_client(cli)

    def set_params(self, node_name: str, **values) -> list:
        """SetParameters over the real service; returns the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request()
        req.parameters = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
        return self.call(SetParameters, f"/{node_name}/set_parameters", req).results

    def lifecycle(self, node_name: str, transition: str) -> bool:
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.label = transition
        return bool(self.call(ChangeState, f"/{node_name}/change_state", req, timeout=180.0).success)

    def state(self, node_name: str) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"/{node_name}/get_state", GetState.Request()).current_state.label


class Collector:
    """Subscription that keeps every message; `wait` blocks until a predicate holds."""

    def __init__(self, node, msg_type, topic: str, qos: Any) -> None:
        self.node = node
        self.msgs: list = []
        self._cond = threading.Condition()
        self.sub = node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg) -> None:
        with self._cond:
            self.msgs.append(msg)
            self._cond.notify_all()

    def wait(self, pred: Callable[[list], bool] = lambda m: len(m) > 0, timeout: float = 30.0) -> list:
        end = time.monotonic() + timeout
        with self._cond:
            while not pred(self.msgs):
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.sub.topic_name}: condition not met within {timeout} s "
                                       f"({len(self.msgs)} messages)")
                self._cond.wait(left)
            return list(self.msgs)

    def clear(self) -> None:
        with self._cond:
            self.msgs.clear()

    def close(self) -> None:
        self.node.destroy_subscription(self.sub)


class NodeProcess:
    """`python -m omg_seg_ros.node --ros-args ...` in its own process, output in a log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "omg_seg_ros.node", "--ros-args", *args],
                                     cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


def start_node(tmp_path_factory, name: str, extra: Optional[list[str]] = None) -> NodeProcess:
    # The shipped parameters file first (proves rclpy accepts it), then the test's overrides.
    args = ["--params-file", str(ROOT / "config" / "perception.yaml"),
            "-r", f"__node:={name}", "-p", "allow_random_weights:=true",
            "-p", "vocabulary_file:=config/vocabularies/robot_workspace.yaml", "-p", "diagnostics_period:=0.5"]
    return NodeProcess(args + list(extra or []), tmp_path_factory.mktemp("node") / f"{name}.log")


@contextmanager
def running_node(client: Client, tmp_path_factory, name: str, extra: Optional[list[str]] = None
                 ) -> Iterator[NodeProcess]:
    """The node `name` (start_node) once active; stopped afterwards, asserting a clean exit on SIGINT (part of the
    contract: no abort from a spinning executor)."""
    proc = start_node(tmp_path_factory, name, extra)
    try:
        wait_active(client, proc, name)
        yield proc
    finally:
        rc = proc.stop()
        assert rc == 0, f"node exited with {rc}:\n{proc.log()[-3000:]}"


def wait_active(client: Client, proc: NodeProcess, name: str, timeout: float = NODE_START_TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"node exited ({proc.proc.returncode}):\n{proc.log()[-3000:]}")
        if "active: listening" in proc.log():
            return
        time.sleep(0.5)
    raise TimeoutError(f"node {name} not active after {timeout} s:\n{proc.log()[-3000:]}")


