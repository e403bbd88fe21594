"""The node's exemplar services: ~/segment_like, ~/add_exemplar, ~/remove_exemplar, ~/list_exemplars,
~/save_exemplars, ~/load_exemplars (srv files in msg/srv; what they compute: core's predict/exemplar.py).

Like services.py: they exist in every lifecycle state, answer `success: false` with a reason for anything they
cannot serve, and every request is checked before any work (limits.max_prompts, limits.max_exemplars,
limits.max_image_pixels). The taught exemplars live in the predictor, so they survive deactivate / activate; the
parameter `exemplars.file` is loaded at configure, so a save there survives a restart.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from std_msgs.msg import Header

from .msgs import DecodeError, MessageCodec, image_to_numpy, is_empty_image, stamp_s
from .worker import RequestError, check_count, check_max_results, no_frame
from omg_seg_core.video import NoFrameError

#: Errors a request can cause (answered, never raised into the executor).
_REQUEST_ERRORS = (RequestError, ValueError, TypeError, RuntimeError, KeyError, OSError)


def load_configured(node: Any) -> Optional[str]:
    """Load the parameter exemplars.file into the configured sessions (every camera), if set; returns a log line
    (or None)."""
    path = str(node.p("exemplars.file") or "")
    if not path or node.sessions is None:
        return None
    from pathlib import Path

    if not Path(path).expanduser().is_file():
        return f"exemplars.file {path} does not exist yet: no exemplars loaded (~/save_exemplars writes it)"
    n = node.sessions.load_exemplars(path)
    return f"exemplars: {n} view(s) of {len(node.sessions.exemplars)} name(s) loaded from {path}"


class ExemplarServices:
    """Creates the exemplar services on `node` (the services share `Services`' helpers)."""

    def __init__(self, node: Any, base: Any) -> None:
        from omg_seg_msgs.srv import AddExemplar, ExemplarFile, ListExemplars, RemoveExemplar, SegmentLike

        self.node, self.base = node, base
        self.codec = MessageCodec.rclpy()
        g = node.service_group
        for srv_type, name, fn in ((SegmentLike, "segment_like", self.segment_like),
                                   (AddExemplar, "add_exemplar", self.add_exemplar),
                                   (RemoveExemplar, "remove_exemplar", self.remove_exemplar),
                                   (ListExemplars, "list_exemplars", self.list_exemplars),
                                   (ExemplarFile, "save_exemplars", self.save_exemplars),
                                   (ExemplarFile, "load_exemplars", self.load_exemplars)):
            node.create_service(srv_type, f"~/{name}", node.guard.wrap(f"~/{name}", fn, on_error=base._internal),
                                callback_group=g)

    # ------------------------------------------------------------------------------------------ helpers
    def _example(self, req: Any, image_field: str, camera: Any) -> tuple[dict, Optional[np.ndarray], Any]:
        """(example kwargs for the session, the example's image or None, header) from a request's points /
        point_labels / boxes / mask and its optional image (RequestError naming the problem)."""
        check_count(len(req.points) + len(req.boxes) // 4, int(self.node.p("limits.max_prompts")),
                    "prompts (points + boxes)", "limits.max_prompts")
        if len(req.boxes) not in (0, 4):
            raise RequestError(f"boxes: an example is ONE object, give one box (4 values xyxy), got {len(req.boxes)}"
                               " values")
        image_msg = getattr(req, image_field)
        rgb, header = self.base._image(image_msg, camera)
        kw: dict = {}
        if len(req.points):
            kw["points"] = [v for p in req.points for v in (p.x, p.y)]
            kw["point_labels"] = list(req.point_labels) if len(req.point_labels) else None
        if len(req.boxes):
            kw["boxes"] = list(req.boxes)
        if not is_empty_image(req.mask):
            try:
                mask = image_to_numpy(req.mask)
            except DecodeError as e:
                raise RequestError(f"mask: {e}") from None
            if mask.ndim != 2:
                raise RequestError(f"mask must be mono8 (one channel), got encoding '{req.mask.encoding}'")
            kw["mask"] = mask != 0
        return kw, rgb, header

    # ------------------------------------------------------------------------------------------ handlers
    def segment_like(self, req, resp):
        try:
            camera, session = self.base._camera_session(req.camera)
            kw, example_rgb, _ = self._example(req, "example_image", camera)
            n = check_max_results(int(req.max_results), int(self.node.p("limits.max_results")), "like_max_results")
            thr = float(req.threshold)
            if not np.isfinite(thr) or not 0.0 <= thr <= 1.0:
                raise RequestError(f"threshold must be in [0, 1] (0 = the parameter like_threshold), got {thr}")
            header = camera.last_header or Header()  # the answer is on the camera's latest frame
            seg, ids = session.like(**kw, name=req.name.strip(), example_image=example_rgb,
                                    threshold=thr or None, max_results=n or None, track=bool(req.track),
                                    stamp=stamp_s(header.stamp))
            resp.segments = self.codec.segments_to_msg(seg, header, task="like")
            resp.success = True
            sim = ", ".join(f"{s:.2f}" for s in seg.scores)
            resp.message = (f"{len(seg)} object(s) like {'the example' if not req.name else repr(req.name)}"
                            + (f" (similarity {sim})" if len(seg) else "") + (f"; tracking {ids}" if ids else ""))
            return resp
        except NoFrameError as e:
            return self.base._fail(resp, str(e))
        except _REQUEST_ERRORS as e:
            return self.base._fail(resp, _text(e))

    def add_exemplar(self, req, resp):
        try:
            camera, session = self.base._camera_session(req.camera)
            kw, rgb, header = self._example(req, "image", camera)
            if not kw:
                raise RequestError("no example: give a click (points), a box or a mask")
            views, seg, ids = session.add_exemplar(req.name, **kw, image=rgb, track=bool(req.track),
                                                   stamp=stamp_s(header.stamp))
            resp.example = self.codec.segments_to_msg(seg, header, task="prompt")
            resp.views, resp.target_id = int(views), int(ids[0]) if ids else 0
            resp.success = True
            resp.message = (f"taught '{seg.class_names[0]}' ({views} view(s), {seg.extra['source']}, "
                            f"{int(seg.masks[0].sum())} px)" + (f"; following it as target {ids[0]}" if ids else ""))
            self.node.get_logger().info(resp.message)
            return resp
        except NoFrameError:
            return self.base._fail(resp, no_frame(camera))
        except _REQUEST_ERRORS as e:
            return self.base._fail(resp, _text(e))

    def remove_exemplar(self, req, resp):
        try:
            n = self.base._sessions().remove_exemplar(req.name.strip())
            resp.success, resp.removed = True, int(n)
            resp.message = f"removed {n} exemplar name(s)" if not req.name.strip() else f"removed '{req.name}'"
            return resp
        except _REQUEST_ERRORS as e:
            return self.base._fail(resp, _text(e))

    def list_exemplars(self, req, resp):
        try:
            book = self.base._sessions().exemplars
            names = book.names()
            views = [book.views(n) for n in names]
            resp.names, resp.views = names, [len(v) for v in views]
            resp.sources = [v[-1].source for v in views]
            resp.success = True
            resp.message = f"{len(names)} exemplar name(s)" + (f": {', '.join(names)}" if names else "")
            return resp
        except _REQUEST_ERRORS as e:
            return self.base._fail(resp, _text(e))

    def _path(self, req) -> str:
        path = req.path.strip() or str(self.node.p("exemplars.file") or "")
        if not path:
            raise RequestError("no path: give one, or set the parameter exemplars.file")
        return path

    def save_exemplars(self, req, resp):
        try:
            sessions, path = self.base._sessions(), self._path(req)
            resp.views = int(sessions.save_exemplars(path))
            resp.success, resp.message = True, f"{resp.views} view(s) saved to {path}"
            return resp
        except _REQUEST_ERRORS as e:
            return self.base._fail(resp, _text(e))

    def load_exemplars(self, req, resp):
        try:
            sessions, path = self.base._sessions(), self._path(req)
            resp.views = int(sessions.load_exemplars(path))
            names = sessions.exemplars.names()
            resp.success, resp.message = True, f"{resp.views} view(s) of {', '.join(names)} loaded from {path}"
            return resp
        except _REQUEST_ERRORS as e:
            return self.base._fail(resp, _text(e))


def _text(e: Exception) -> str:
    """A KeyError's message without the quotes str() adds."""
    return e.args[0] if isinstance(e, KeyError) and e.args else str(e)


__all__ = ["ExemplarServices", "load_configured"]
