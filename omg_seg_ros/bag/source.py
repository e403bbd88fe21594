"""A ROS 2 bag as an `omg-seg-eval` source: frames joined by stamp (io.iter_frames), decoded into RGB, ground
truth mapped to the evaluation classes, and recorded predictions; everything unusable becomes a counted
(reason, example) entry instead of an exception (reasons are the keys of report.json "skipped")."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import numpy as np

from omg_seg_core.eval.runner import GroundTruth, SourceFrame, gt_from_segments
from omg_seg_core.structures import Segments
from .. import msgs
from . import io


def _remap(segs: Segments, classmap: Any) -> tuple[Segments, int]:
    """Class ids of Segments -> evaluation indices by class name; segments of unknown classes are dropped."""
    idx = [classmap.index(n, add=False) if n else None for n in segs.class_names]
    keep = np.array([i is not None for i in idx], bool)
    out = segs.select(keep)
    out.class_ids = np.array([i for i in idx if i is not None], np.int64)
    out.is_thing = np.array([classmap.is_thing[i] for i in out.class_ids], bool)
    return out, int((~keep).sum())


def decode_frame(bf: io.BagFrame, topics: io.FrameTopics, classmap: Any, luts: dict) -> Any:
    """BagFrame -> omg_seg_core.eval.runner.SourceFrame (rgb, GroundTruth mapped to evaluation classes,
    recorded prediction), with a (reason, example) entry for everything that could not be used."""
    where = f"frame {bf.index} stamp {bf.stamp}"
    out = SourceFrame(bf.index, bf.stamp)
    try:
        rgb = msgs.image_to_rgb(bf.msgs["image"])
    except msgs.DecodeError as e:
        out.skips.append((f"image not decodable: {e.reason} (frame skipped)", f"{where}: {e}"))
        return out
    h, w = rgb.shape[:2]
    gt = None
    try:
        if "semantic" in bf.msgs:
            key = tuple(sorted(bf.class_names.items())) if bf.class_names else None
            if key not in luts:
                luts[key] = classmap.lut(bf.class_names)
            raw = msgs.label_to_array(bf.msgs["semantic"])
            inst = msgs.label_to_array(bf.msgs["instances"]) if "instances" in bf.msgs else None
            for what, a in (("semantic", raw), ("instance_ids", inst)):
                if a is not None and a.shape != (h, w):
                    raise msgs.DecodeError("ground truth size differs from the image",
                                      f"{what} {a.shape[1]}x{a.shape[0]} vs image {w}x{h}")
            sem = luts[key][raw]
            lost = int(((sem == 65535) & (raw != 65535)).sum())
            if lost:
                out.skips.append(("ground-truth pixels with a class id outside the label map (read as void)",
                                  f"{where}: {lost} px"))
            gt = GroundTruth(sem, inst)
            if "instances" in topics.gt and inst is None:
                out.skips.append(("instance ids missing at this stamp: panoptic/AP/tracking skipped, mIoU kept",
                                  where))
        elif "segments" in bf.msgs:
            segs = msgs.segments_from_msg(bf.msgs["segments"])
            if segs.image_size != (h, w):
                raise msgs.DecodeError("ground truth size differs from the image",
                                  f"segments {segs.image_size[1]}x{segs.image_size[0]} vs image {w}x{h}")
            segs, dropped = _remap(segs, classmap)
            if dropped:
                out.skips.append(("ground-truth segments of a class not in the class list (as void)",
                                  f"{where}: {dropped}"))
            gt = gt_from_segments(segs)
    except msgs.DecodeError as e:
        out.skips.append((f"ground truth not usable: {e.reason} (frame evaluated for latency only)", f"{where}: {e}"))
        gt = None
    if gt is not None and "objects_3d" in bf.msgs:
        try:
            gt.objects_3d = msgs.objects_3d_from_msg(bf.msgs["objects_3d"])
        except msgs.DecodeError as e:
            out.skips.append((f"3D ground truth not usable: {e.reason}", f"{where}: {e}"))
    if "depth" in topics.gt:
        out.depth = _depth(bf, (h, w), out.skips, where)
    if gt is None and topics.gt.keys() - io.NOT_GT_ROLES and not out.skips:
        out.skips.append(("no ground truth with a matching stamp (frame evaluated for latency only)", where))
    if gt is not None and "prompts" in bf.msgs:
        try:
            gt.prompts = [(p.kind, p.box, p.target) for p in msgs.prompts_from_msg(bf.msgs["prompts"])]
        except msgs.DecodeError as e:
            out.skips.append((f"prompts not usable: {e.reason}", f"{where}: {e}"))
    if "prediction" in topics.gt:
        if "prediction" not in bf.msgs:
            out.skips.append(("no recorded prediction at this stamp (frame skipped)", where))
            return out
        try:
            rec = msgs.segments_from_msg(bf.msgs["prediction"])
        except msgs.DecodeError as e:
            out.skips.append((f"recorded prediction not usable: {e.reason} (frame skipped)", f"{where}: {e}"))
            return out
        if rec.image_size != (h, w):
            out.skips.append(("recorded prediction size differs from the image (frame skipped)", where))
            return out
        out.recorded, dropped = _remap(rec, classmap)
        if dropped:
            out.skips.append(("predicted segments of a class not in the vocabulary (dropped)", f"{where}: {dropped}"))
    out.rgb, out.gt = rgb, gt
    return out


def _depth(bf: io.BagFrame, size: tuple[int, int], skips: list, where: str) -> Any:
    """The frame's DepthFrame (depth registered to the image + the camera_info at its stamp), or None with a
    (reason, example) entry: the frame is then evaluated in 2D only."""
    if "depth" not in bf.msgs or "camera_info" not in bf.msgs:
        skips.append(("no depth + camera_info at this stamp (frame evaluated in 2D only)", where))
        return None
    try:
        return msgs.depth_frame_from_msgs(bf.msgs["depth"], bf.msgs["camera_info"], size)
    except ValueError as e:  # DecodeError included
        skips.append((f"depth not usable: {str(e).split(':')[0]} (frame evaluated in 2D only)", f"{where}: {e}"))
        return None


def bag_frames(reader: Any, a: Any, stream_skips: Counter, errors: list[str]) -> tuple[Any, int, dict]:
    """(source(classmap, start) -> Iterator[SourceFrame], image message count, meta) for `omg-seg-eval`."""
    given = {r: t for r, t in (("depth", getattr(a, "depth_topic", None)),
                               ("camera_info", getattr(a, "camera_info_topic", None))) if t}
    topics = io.discover_topics(reader, a.image_topic, a.gt_ns, given)
    conns = {c.topic: c for c in reader.connections}
    if a.predictions_topic:
        if a.predictions_topic not in conns:
            raise io.BagError(f"predictions topic {a.predictions_topic} not in the bag (topics: {sorted(conns)})")
        if conns[a.predictions_topic].msgtype != "omg_seg_msgs/msg/SegmentArray":
            raise io.BagError(f"{a.predictions_topic} is a {conns[a.predictions_topic].msgtype}, not a SegmentArray")
        topics.gt["prediction"] = a.predictions_topic
    total = int(getattr(conns[topics.image], "msgcount", 0))
    tol = int(a.stamp_tolerance_ms * 1e6)

    def source(classmap: Any, start: int) -> Iterator[Any]:
        luts: dict = {}
        for bf in io.iter_frames(reader, topics, stream_skips, tol, a.window, errors):
            yield SourceFrame(bf.index, bf.stamp) if bf.index < start else decode_frame(bf, topics, classmap, luts)

    meta = {"image_topic": topics.image, "gt_topics": dict(topics.gt), "label_info_topic": topics.label_info,
            "image_messages_in_bag": total}
    if not topics.gt.keys() - io.NOT_GT_ROLES:
        meta["note"] = "no ground-truth topics found: latency only"
    elif "semantic" in topics.gt and "instances" not in topics.gt:
        meta["note"] = ("no instance ground truth (<ns>/gt/instance_ids): mIoU only; PQ, mask AP and tracking need "
                        "instance ids")
    return source, total, meta


__all__ = ["bag_frames", "decode_frame"]
