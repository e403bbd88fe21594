"""What the node reports on /diagnostics: one DiagnosticStatus per camera with its health and rolling statistics.

Status name: "<node>: pipeline" for the unnamed camera (parameter cameras: ['']), "<node>: <camera> pipeline" for a
named one; all of a node's statuses go out in one DiagnosticArray. Level: 2 (error) when the worker stopped, 1
(warning) when that camera had no input image for 5 s or a recent error, else 0. Values (strings): rates and
latencies (p50 / p95 over the camera's last 300 frames), frame counters, the per-stage p50 of a frame's work
(`stage_<name>_p50_ms`: decode, preprocess, image_graph (the batch's call), postprocess, tracker, recovery, targets,
depth, out_<output> = that message's building + publishing), the backend actually running, errors, the batching
of the cameras (`cameras`, `batches`, `batch_size_mean`), and with depth.enabled the depth pairing counters
(depth_input.py).
"""
from __future__ import annotations

import time
from typing import Any


def status(node: Any, camera: Any, errors: list[str]) -> tuple[int, str, dict[str, Any]]:
    """(level, message, values) of `camera` (a camera.Camera) of `node` (an OmgSegNode) now; `errors`: the camera's
    errors since the last report (Camera.take_errors)."""
    s = camera.stats.snapshot()
    level, msg = 0, "ok"
    if node._worker is None or not node._worker.is_alive():
        level, msg = 2, "worker stopped"
    elif camera.last_frame_time is None or time.monotonic() - camera.last_frame_time > 5.0:
        level, msg = 1, "no input images"
    elif errors:
        level, msg = 1, errors[-1]
    session, sessions = camera.session, node.sessions
    pred = sessions.predictor if sessions is not None else None
    values = {
        "camera": camera.name,
        "rate_hz": f"{s['rate_hz']:.2f}", "latency_p50_ms": f"{s['latency_p50_ms']:.1f}",
        "latency_p95_ms": f"{s['latency_p95_ms']:.1f}", "model_p50_ms": f"{s['model_p50_ms']:.1f}",
        "model_p95_ms": f"{s['model_p95_ms']:.1f}", "queue_wait_p50_ms": f"{s['queue_wait_p50_ms']:.1f}",
        "overhead_p50_ms": f"{s['overhead_p50_ms']:.1f}", "overhead_p95_ms": f"{s['overhead_p95_ms']:.1f}",
        "frames_received": camera.mailbox.received, "frames_processed": s["processed"],
        "frames_dropped": camera.mailbox.dropped, "bad_frames": camera.bad_frames, "errors": s["errors"],
        "image_passes": session.image_passes if session is not None else 0,
        "callback_errors": node.guard.count, "last_callback_error": node.guard.last,
        **{f"stage_{k}_p50_ms": f"{v:.2f}" for k, v in s["stage_p50_ms"].items()},
        "backend": getattr(getattr(pred, "backend", None), "name", node.p("backend")), "device": node.p("device"),
        "model": pred.cfg.name if pred is not None else node.p("model"), "task": node.p("task"),
        "num_classes": len(pred.class_names) if pred is not None else 0,
        "input_topic": camera.sub.topic_name if camera.sub is not None else "",
        "cameras": ",".join(c.name for c in node.cameras),
        "batches": sessions.batches if sessions is not None else 0,
        "batch_size_mean": f"{sessions.batched_frames / sessions.batches:.2f}" if sessions and sessions.batches
        else "0",
        **camera.depth_input.diagnostics(),
    }
    if s["last"]:
        last = s["last"]
        values.update({"last_frame_stamp": f"{last['stamp']:.9f}", "last_frame_model_ms": f"{last['model_ms']:.2f}",
                       "last_frame_latency_ms": f"{last['latency_ms']:.2f}"})
    return level, msg, values


__all__ = ["status"]
