"""The node's services: ~/segment_prompt, ~/segment_text, ~/set_vocabulary, ~/reset_tracks, ~/remove_target (and
the exemplar services of exemplar_services.py).

They exist in every lifecycle state and answer `success: false` with a reason when the node is not active,
so a caller never waits on a service that is not there. Prompt and text calls run on the cached features of
the latest processed frame of the request's `camera` ('' = the first camera; core's VideoSession holds the lock),
or on the request's own image when one is sent. `~/set_vocabulary` changes the one vocabulary of every camera,
`~/reset_tracks` (std_srvs/Trigger: no fields) resets every camera's tracks and targets.
Every failure is an error response; nothing a caller sends can stop the node.
"""
from __future__ import annotations

from typing import Any, Optional

from std_msgs.msg import Header
from std_srvs.srv import Trigger

from .msgs import DecodeError, MessageCodec, image_to_rgb, is_empty_image, stamp_s
from omg_seg_core.video import NoFrameError

from .exemplar_services import ExemplarServices
from .worker import RequestError, check_count, check_max_results, no_frame


def _check_text(text: str, max_results: int, max_length: int, most_results: int) -> str:
    """A text request's words and result count, checked before any work (RequestError naming the problem and the
    limit's parameter)."""
    query = (text or "").strip()
    if not query:
        raise RequestError("empty text: say what to segment, e.g. 'segment the red box'")
    check_count(len(query), max_length, "characters in the text", "limits.max_text_length")
    check_max_results(max_results, most_results, "text_max_results")
    return query


class Services:
    """Creates the services on `node` and handles them."""

    def __init__(self, node: Any) -> None:
        from omg_seg_msgs.srv import RemoveTarget, SegmentPrompt, SegmentText, SetVocabulary

        self.node = node
        self.codec = MessageCodec.rclpy()
        g = node.service_group
        # every handler answers; the guard turns an unexpected exception into an error response (guard.py)
        for srv_type, name, fn, group in ((SegmentPrompt, "segment_prompt", self.segment_prompt, g),
                                          (SegmentText, "segment_text", self.segment_text, g),
                                          # its own group: embedding a vocabulary must not hold up prompts
                                          (SetVocabulary, "set_vocabulary", self.set_vocabulary,
                                           node.vocabulary_group),
                                          (Trigger, "reset_tracks", self.reset_tracks, g),
                                          (RemoveTarget, "remove_target", self.remove_target, g)):
            node.create_service(srv_type, f"~/{name}", node.guard.wrap(f"~/{name}", fn, on_error=self._internal),
                                callback_group=group)
        self.exemplars = ExemplarServices(node, self)  # ~/segment_like, ~/add_exemplar, ... (exemplar_services.py)

    # ------------------------------------------------------------------------------------------ helpers
    def _camera_session(self, name: str = ""):
        """(camera, its VideoSession) for the camera a request names ('' = the first); RequestError when inactive
        or unknown. The session comes from the same read of node.sessions as the activity check (a concurrent
        cleanup sets node.sessions and every camera's session to None)."""
        sessions = self._sessions()
        cameras = self.node.cameras
        if not name:
            return cameras[0], sessions[cameras[0].name]
        for cam in cameras:
            if cam.name == name:
                return cam, sessions[cam.name]
        raise RequestError(f"unknown camera '{name}'; this node's cameras: {[c.name for c in cameras]} (parameter "
                           "cameras; '' = the first)")

    def _sessions(self):
        """Every camera's sessions (CameraSessions) of the active node; RequestError when inactive. Read once: a
        concurrent cleanup sets node.sessions to None."""
        sessions = self.node.sessions
        if not self.node.active or sessions is None:
            raise RequestError("node is not active (lifecycle state must be 'active'; see ~/change_state)")
        return sessions

    def _session(self, name: str = ""):
        """The VideoSession of camera `name` ('' = the first)."""
        return self._camera_session(name)[1]

    def _image(self, msg, camera) -> tuple[Optional[Any], Header]:
        """(rgb or None, header for the response): the request image if sent, else the camera's latest frame's."""
        if is_empty_image(msg):
            h = camera.last_header
            return None, h if h is not None else Header()
        try:
            return image_to_rgb(msg, int(self.node.p("limits.max_image_pixels"))), msg.header
        except DecodeError as e:
            raise RequestError(f"request image: {e}") from None

    def _internal(self, req, resp):
        return self._fail(resp, "internal error while handling the request (see the node's log); the node keeps "
                                "running")

    def _fail(self, resp, text: str):
        resp.success = False
        resp.message = text
        self.node.get_logger().warning(f"request rejected: {text}", throttle_duration_sec=1.0)
        return resp

    @staticmethod
    def _summary(seg, ids: list[int]) -> str:
        parts = [f"{seg.class_names[i] or 'object'} ({seg.scores[i]:.2f}"
                 + (f", id {int(seg.track_ids[i])}" if seg.track_ids[i] > 0 else "") + ")" for i in range(len(seg))]
        head = f"{len(seg)} segment(s)" + (f": {', '.join(parts)}" if parts else "")
        hint = seg.extra.get("hint")
        if hint:  # which hint decided, and how well the answer fits it (1 = the point is on it)
            fit = ", ".join(f"{f:.2f}" for f in hint["fit"])
            head += f"; hint {hint['used']}" + (" (answered as a click)" if hint.get("as_prompt") else
                                                 f" (fit {fit})")
        return head + (f"; tracking target(s) {ids}" if ids else "")

    def _segments_response(self, resp, seg, ids, header, task):
        resp.segments = self.codec.segments_to_msg(seg, header, task=task)
        resp.success = True
        resp.message = self._summary(seg, ids)
        return resp

    # ------------------------------------------------------------------------------------------ handlers
    def segment_prompt(self, req, resp):
        camera = None
        try:
            camera, session = self._camera_session(req.camera)
            check_count(len(req.points) + len(req.boxes) // 4, int(self.node.p("limits.max_prompts")),
                        "prompts (points + boxes)", "limits.max_prompts")
            rgb, header = self._image(req.image, camera)
            pts = [v for p in req.points for v in (p.x, p.y)]
            seg, ids = session.prompt(pts, list(req.point_labels), list(req.boxes), image=rgb, track=bool(req.track),
                                      stamp=stamp_s(header.stamp))
            return self._segments_response(resp, seg, ids, header, "prompt")
        except NoFrameError:
            return self._fail(resp, no_frame(camera))
        except (RequestError, ValueError, TypeError, RuntimeError) as e:
            return self._fail(resp, str(e))

    def segment_text(self, req, resp):
        camera = None
        try:
            camera, session = self._camera_session(req.camera)
            query = _check_text(req.text, int(req.max_results), int(self.node.p("limits.max_text_length")),
                                int(self.node.p("limits.max_results")))
            rgb, header = self._image(req.image, camera)
            check_count(len(req.hint_points) + len(req.hint_boxes) // 4, int(self.node.p("limits.max_prompts")),
                        "hint points + boxes", "limits.max_prompts")
            hint = {}
            if len(req.hint_points) or len(req.hint_boxes) or len(req.hint_labels):  # checked by the predictor
                hint = {"hint_points": [v for p in req.hint_points for v in (p.x, p.y)],
                        "hint_labels": list(req.hint_labels), "hint_boxes": list(req.hint_boxes)}
            elif rgb is None and session.image_size is not None:
                pointed = self.node.pointing.hint(camera.last_header, session.image_size,
                                                  camera.depth_input.camera_info)
                if pointed is not None:
                    hint = {"hint_points": pointed}
            seg, ids = session.text(query, int(req.max_results) or None, image=rgb, track=bool(req.track),
                                    stamp=stamp_s(header.stamp), **hint)
            return self._segments_response(resp, seg, ids, header, "text")
        except NoFrameError:
            return self._fail(resp, no_frame(camera))
        except (RequestError, ValueError, TypeError, RuntimeError) as e:
            return self._fail(resp, str(e))

    def set_vocabulary(self, req, resp):
        try:
            sessions = self._sessions()
            check_count(len(req.things) + len(req.stuff), int(self.node.p("limits.max_vocabulary")), "classes",
                        "limits.max_vocabulary")
            # one vocabulary for every camera (one model): every camera's tracks are reset
            n = sessions.set_vocabulary([t.strip() for t in req.things], [s.strip() for s in req.stuff],
                                                  cancel=self.node.shutting_down)
            self.node.publish_label_info()
            resp.success, resp.num_classes = True, n
            resp.message = f"vocabulary set: {len(req.things)} thing(s), {len(req.stuff)} stuff; tracks reset"
            self.node.get_logger().info(resp.message)
            return resp
        except (RequestError, ValueError, TypeError, RuntimeError, OSError) as e:
            return self._fail(resp, str(e))

    def reset_tracks(self, req, resp):
        try:
            n = self._sessions().reset_tracks("reset requested over ~/reset_tracks")
            resp.message = f"tracks reset, {n} target(s) removed" + (
                f" ({len(self.node.cameras)} cameras)" if len(self.node.cameras) > 1 else "")
            resp.success = True
            return resp
        except (RequestError, RuntimeError) as e:
            return self._fail(resp, str(e))

    def remove_target(self, req, resp):
        try:
            ok = self._session(req.camera).remove_target(int(req.id))
            resp.success = bool(ok)
            resp.message = (("all targets removed" if req.id == 0 else f"target {req.id} removed") if ok
                            else (f"no target with id {req.id}" if req.id else "no targets to remove"))
            return resp
        except (RequestError, ValueError, RuntimeError) as e:
            return self._fail(resp, str(e))
