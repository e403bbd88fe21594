"""The `omg_seg` lifecycle node: parameters, input subscription, worker thread, publishers, diagnostics.

Lifecycle: configure loads the model (loader.py builds core's CameraSessions: one VideoSession per camera of
parameter `cameras`), activate creates publishers + the input
subscription and starts the worker, deactivate stops them (and frees GPU memory on CUDA devices), cleanup
drops the model. `autostart` (default true) runs configure + activate at start-up.

Cameras (parameter `cameras`, camera.py): every camera has its own topics, mailbox, statistics, publishers, depth
input, tracker and targets; ONE model serves them all (omg_seg_core/multi_camera.py). The default [''] is one
unnamed camera on ~/input/image and ~/output/....

Threads: the executor delivers each camera's images to its `Camera.on_image`, which only stores the message in
that camera's one-slot mailbox; the worker (pipeline.py) gathers the newest frame of every camera that has one
(waiting at most `batch_window_ms` for the other live cameras: worker.Inbox) and runs them through the image graph
as one batch while a second thread post-processes the previous batch and publishes each camera's outputs as soon
as its frame is done; services (services.py) run in their own callback group of a MultiThreadedExecutor
(executor.py) and share the sessions' lock.

Robustness (docs/ros.md, "Limits and bad input"): every callback, timer and service handler is wrapped by the
last-resort `Guard` (guard.py); requests are capped by the `limits.*` parameters; a vocabulary is embedded without
holding the frame lock; shutdown cancels long work and ends the process within a few seconds.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Optional

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from sensor_msgs.msg import CompressedImage, Image

from omg_seg_core.multi_camera import CameraSessions

from . import params
from .camera import Camera
from .exemplar_services import load_configured
from .diagnostics import status
from .executor import NodeExecutor
from .pointing import PointingInput
from .guard import Guard
from .msgs import MessageCodec
from .loader import ModelLoadError, build_sessions, release_device_memory, threshold_overrides, tracker_config_from
from .pipeline import FramePipeline
from .worker import Inbox
from .services import Services

NODE_NAME = "omg_seg"


class OmgSegNode(LifecycleNode):
    """See module docstring. Topics and services are relative to the node (`~/...`)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._defaults: dict[str, Any] = {}
        self.guard = Guard(self.get_logger())
        self.shutting_down = threading.Event()  # cancels long work (vocabulary embedding) on shutdown
        for name, default, desc in params.all_params():
            self._defaults[name] = default
            self.declare_parameter(name, default, params.descriptor(name, default, desc))
        self.sessions: Optional[CameraSessions] = None  # one model, a session per camera (configure)
        self.cameras: list[Camera] = []                 # parameter `cameras`, made at configure
        self.inbox = Inbox(0)                           # the cameras' mailboxes
        self.pointing = PointingInput(self)
        self.active = False
        self._released = False
        self._worker: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._diag_timer = None
        self._resubscribe_timer = None
        # Callback groups: one per camera for its inputs (camera.py: a camera's callback never waits for another
        # camera's), one for the diagnostics timer, one for the rest of the input side (pointing, re-subscribing).
        self.input_group = MutuallyExclusiveCallbackGroup()
        self.diagnostics_group = MutuallyExclusiveCallbackGroup()
        self.service_group = MutuallyExclusiveCallbackGroup()
        self.vocabulary_group = MutuallyExclusiveCallbackGroup()
        self.service_handlers = Services(self)
        self.add_on_set_parameters_callback(self.guard.wrap("parameter callback", self._on_set_parameters,
                                                            on_error=_parameter_error))
        self._guard_change_state()
        if self.p("autostart"):
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ------------------------------------------------------------------------------------------ helpers
    def _guard_change_state(self) -> None:
        """A ChangeState request with a transition id that does not exist in the current state makes the installed
        rclpy raise RCLError out of its service handler (fixed only in later rclpy releases), which ended the
        process. Such a request is answered `success: false` instead (as rclpy does for an unknown label)."""
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        srv = getattr(self, "_service_change_state", None)
        if srv is None:
            return
        original = srv.callback

        def change_state(req, resp):
            try:
                return original(req, resp)
            except _rclpy.RCLError as e:
                self.get_logger().warning(f"~/change_state: transition {req.transition.id} "
                                          f"'{req.transition.label}' refused: {str(e).splitlines()[0]}")
                resp.success = False
                return resp
        srv.callback = self.guard.wrap("~/change_state", change_state, on_error=lambda req, resp: resp)

    def p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def values(self) -> dict[str, Any]:
        return {name: self.p(name) for name in self._defaults}

    # ------------------------------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        return self._configure()

    def _configure(self, reload: bool = False) -> TransitionCallbackReturn:
        """Build the model and every camera's session. `reload` (activate after a GPU deactivate freed the device
        memory): the configured cameras and the taught exemplars stay; parameter changes still wait for the next
        real configure."""
        t0 = time.monotonic()
        book = self.sessions.exemplars if reload and self.sessions is not None else None
        try:
            names = [c.name for c in self.cameras] if reload else params.check_cameras(
                self.p("cameras"), int(self.p("limits.max_cameras")))
            self.sessions = build_sessions(self.values(), names, warn=self.get_logger().warning,
                                           info=self.get_logger().info)
        except (ModelLoadError, ValueError) as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        except Exception as e:  # an unexpected loader error must still be visible (rclpy would swallow it)
            self.get_logger().error(f"configure failed: {type(e).__name__}: {e}")
            return TransitionCallbackReturn.FAILURE
        if [c.name for c in self.cameras] != names:
            self.inbox = Inbox(len(names))
            self.cameras = [Camera(self, n, box, first=i == 0) for i, (n, box) in enumerate(zip(names, self.inbox.boxes))]
        for cam in self.cameras:
            cam.session = self.sessions[cam.name]
        self._released = False
        if book is not None:
            self.sessions.predictor.exemplars = book
        self.sessions.exemplars.max_exemplars = int(self.p("limits.max_exemplars"))  # before the file's load
        loaded = None
        if book is None:
            try:
                loaded = load_configured(self)
            except (ValueError, OSError) as e:  # a bad exemplar file must not stop the node: say so, go on
                loaded = f"exemplars.file not loaded: {e}"
        if loaded:
            self.get_logger().info(loaded)
        pred = self.sessions.predictor
        self.get_logger().info(
            f"configured: model {pred.cfg.name}, backend {pred.backend.name} (parameter {self.p('backend')}), device "
            f"{self.p('device')}, {len(self.sessions.class_names)} classes, task {self.p('task')}, "
            f"{len(names)} camera(s) {names} ({time.monotonic() - t0:.1f} s)")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self._released:  # GPU memory was freed on deactivate: reload (same cameras, same taught exemplars)
            rc = self._configure(reload=True)
            if rc != TransitionCallbackReturn.SUCCESS:
                return rc
        for cam in self.cameras:
            cam.outputs.create()
        self.publish_label_info()
        self.inbox.reopen()
        self._stop.clear()
        self._worker = threading.Thread(target=FramePipeline(self).run, args=(self._stop,), name="omg_seg_worker",
                                        daemon=True)
        self._worker.start()
        self._subscribe()
        self._diag_timer = self._diagnostics_timer(float(self.p("diagnostics_period")))
        self.active = True
        self.get_logger().info(f"active: listening on {self._input_topics()} ({self.p('qos.reliability')})")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        # The device the predictor really runs on ("auto" may have picked a GPU); CPU memory is kept so that
        # re-activating is instant.
        if self.sessions is not None and getattr(self.sessions.predictor.device, "type", "cpu") == "cuda":
            release_device_memory(self.sessions)
            self._released = True
        self.get_logger().info("inactive")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._drop_model()
        self.get_logger().info("cleaned up (model unloaded)")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._drop_model()
        return TransitionCallbackReturn.SUCCESS

    def _drop_model(self) -> None:
        self._stop_io()
        self.sessions = None
        for cam in self.cameras:
            cam.session = None

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._stop_io()
        return TransitionCallbackReturn.SUCCESS

    def _stop_io(self, worker_timeout: float = 30.0) -> None:
        """Stop input, worker, timer and publishers (idempotent). The worker finishes its frame first (up to
        `worker_timeout` s; it is a daemon thread, so a frame still running then cannot keep the process alive)."""
        self.active = False
        for cam in self.cameras:
            cam.stop()
        self.pointing.unsubscribe()
        if self._resubscribe_timer is not None:
            self.destroy_timer(self._resubscribe_timer)
            self._resubscribe_timer = None
        self._stop.set()
        self.inbox.close()
        if self._worker is not None:
            self._worker.join(timeout=worker_timeout)
            self._worker = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for cam in self.cameras:
            cam.outputs.destroy()

    def shutdown(self) -> None:
        """Stop the worker before the executor and context go away (exiting with it running aborts). Long work
        (a vocabulary being embedded) is cancelled; a frame still running after 2 s is left to its daemon thread."""
        self.shutting_down.set()
        self._stop_io(worker_timeout=2.0)

    # ------------------------------------------------------------------------------------------ input
    def _subscribe(self) -> None:
        """(Re)create every input subscription: each camera's image (raw or compressed) and, when their parameters
        enable them, its depth + camera_info, and the pointing gestures."""
        self.pointing.subscribe()
        qos = params.input_qos(self.p("qos.reliability"), int(self.p("qos.depth")))
        for cam in self.cameras:
            cam.stop()
            cam.depth_input.subscribe()
            on_image = self.guard.wrap("image callback", cam.on_image)
            if self.p("input.compressed"):
                cam.sub = self.create_subscription(CompressedImage, cam.topic("~/input/image/compressed"), on_image,
                                                   qos, callback_group=cam.group)
            else:
                cam.sub = self.create_subscription(Image, cam.topic("~/input/image"), on_image, qos,
                                                   callback_group=cam.group)

    def _input_topics(self) -> str:
        return ", ".join(c.sub.topic_name for c in self.cameras if c.sub is not None)

    # ------------------------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        if not self.p("outputs.diagnostics") or not self.cameras:
            return
        codec, stamp = MessageCodec.rclpy(), self.get_clock().now().to_msg()
        arrays = []
        for cam in self.cameras:  # one status per camera, all in one DiagnosticArray
            level, msg, values = status(self, cam, cam.take_errors())
            arrays.append(codec.diagnostics_msg(self.get_name(), stamp, level, msg, values,
                                                hardware_id=str(self.p("device")),
                                                what=f"{cam.name} pipeline" if cam.name else "pipeline"))
        out = arrays[0]
        out.status = [st for a in arrays for st in a.status]
        self.cameras[0].outputs.publish_diagnostics(out)

    # ------------------------------------------------------------------------------------------ parameters
    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Validate every change first (all-or-nothing), then apply the run-time ones."""
        try:
            new = {}
            for prm in changes:
                if prm.name not in self._defaults:
                    continue  # use_sim_time and other rclpy parameters
                new[prm.name] = params.coerce(prm.name, self._defaults[prm.name], prm.value)
                params.validate(prm.name, new[prm.name])
            if any(k.startswith("tracking.") and k != "tracking.enabled" for k in new):
                merged = {**self.values(), **new}
                tracker_config_from(merged)  # raises ValueError naming the bad field
            if any(k.startswith("depth.") for k in new):
                params.depth_config_from({**self.values(), **new})  # raises ValueError naming the bad field
            if "cameras" in new or "limits.max_cameras" in new:
                merged = {**self.values(), **new}
                params.check_cameras(merged["cameras"], int(merged["limits.max_cameras"]))
            if "vocabulary_file" in new and self.sessions is not None:
                self._apply_vocabulary_file(new["vocabulary_file"])
        except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        self._apply_runtime(new)
        return SetParametersResult(successful=True)

    def _apply_vocabulary_file(self, path: str) -> None:
        from .loader import resolve_path

        if not path:
            raise ValueError("vocabulary_file: '' restores the checkpoint vocabulary only at the next configure")
        src = str(resolve_path(path)) if path.endswith((".yaml", ".yml")) else path
        n = self.sessions.set_vocabulary(src, max_classes=int(self.p("limits.max_vocabulary")),
                                         cancel=self.shutting_down)
        self.publish_label_info()
        self.get_logger().info(f"vocabulary {path}: {n} classes")

    def publish_label_info(self) -> None:
        """Every camera's latched ~/output/label_info (the one shared vocabulary) with its latest frame's header."""
        if self.sessions is not None:
            for cam in self.cameras:
                cam.outputs.publish_label_info(self.sessions.class_names, cam.last_header)

    def _apply_runtime(self, new: dict[str, Any]) -> None:
        session = self.sessions  # every camera's settings at once
        thr = threshold_overrides(new)
        if thr and session is not None:
            session.set_thresholds(**thr)
        if session is not None and "task" in new:
            session.task = new["task"]
        trk = {k: v for k, v in new.items() if k.startswith("tracking.") and k != "tracking.enabled"}
        if trk and session is not None:
            session.set_tracker_config(tracker_config_from({**self.values(), **new}))
        if session is not None and "limits.max_exemplars" in new:  # names taught already stay; new ones wait
            session.exemplars.max_exemplars = int(new["limits.max_exemplars"])
        if session is not None and any(k.startswith("depth.") for k in new):
            session.depth_config = params.depth_config_from({**self.values(), **new})
        if "tracking.enabled" in new and session is not None:
            self.get_logger().info("tracking.enabled takes effect at the next configure")
        if any(k in params.RECONFIGURE for k in new):
            self.get_logger().info(f"{sorted(k for k in new if k in params.RECONFIGURE)} take effect at the next "
                                   "configure (deactivate, cleanup, configure, activate)")
        if (self.active and self._resubscribe_timer is None
                and any(k in new for k in ("qos.reliability", "qos.depth", "input.compressed", "depth.enabled",
                                       "pointing.topic"))):
            # Applied after the callback returns so the new values are visible to _subscribe; one pending
            # re-subscription serves every input parameter changed meanwhile (several timers spun forever).
            self._resubscribe_timer = self.create_timer(
                0.0, self.guard.wrap("re-subscribe timer", self._resubscribe_once), callback_group=self.input_group)
        if self.active and "diagnostics_period" in new and self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self._diagnostics_timer(float(new["diagnostics_period"]))

    def _diagnostics_timer(self, period: float):
        return self.create_timer(period, self.guard.wrap("diagnostics timer", self._publish_diagnostics),
                                 callback_group=self.diagnostics_group)

    def _resubscribe_once(self) -> None:
        timer, self._resubscribe_timer = self._resubscribe_timer, None
        if timer is not None:
            self.destroy_timer(timer)
        if self.active:
            self._subscribe()
            depth = self.cameras[0].depth_input.enabled if self.cameras else False
            self.get_logger().info(f"input now {self._input_topics()}, reliability {self.p('qos.reliability')}, "
                                   f"depth {'on' if depth else 'off'}")


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry `omg-seg-node` (plain `--ros-args` usage)."""
    from omg_seg_core.runtime.allocator import ENV_SWITCH, tune_allocator

    malloc = tune_allocator()  # before the model allocates: per-frame activations stay in the heap (allocator.py)
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    # pool threads for the short callbacks: every camera's inputs (a group each), diagnostics, prompt/text services,
    # the vocabulary service, parameter and lifecycle services (frames run on the worker's own threads)
    executor = NodeExecutor(num_threads=4)  # MultiThreadedExecutor without its busy loop under load (executor.py)
    try:
        node = OmgSegNode()
        node.get_logger().info(f"malloc tuning: {malloc or 'not applied'} ({ENV_SWITCH}=0 disables)")
        executor.add_node(node)
        _spin(executor, node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
        clean = executor.shutdown(timeout_sec=2.0)  # a request still running gets 2 s, then is abandoned
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if not clean or any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        # A callback that is still running lives in a non-daemon executor thread, which Python would wait for
        # at exit: end now (everything the node owns is shut down above).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _parameter_error(changes: list[Parameter]) -> SetParametersResult:
    return SetParametersResult(successful=False, reason="internal error while applying the parameters (see the "
                                                        "node's log); the change was refused")


def _spin(executor: MultiThreadedExecutor, node: OmgSegNode) -> None:
    """executor.spin() that survives: an exception escaping a callback (the Guard wraps ours; rclpy's own
    services are not) is reported and the node keeps spinning, until shutdown (Ctrl-C, SIGTERM, rclpy.shutdown)."""
    while rclpy.ok():
        try:
            executor.spin()
            return
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception as e:  # noqa: BLE001 - the last resort (guard.py)
            node.guard.report("executor", e)


if __name__ == "__main__":
    sys.exit(main())
