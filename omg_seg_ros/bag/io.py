"""ROS 2 bag input/output without a ROS install (rosbags): a bag writer and a streaming reader that joins an
image topic with ground-truth topics by header stamp. Messages and their numpy conversions: omg_seg_ros/msgs.py.

Ground-truth topic convention (docs/evaluation.md), under a namespace `<ns>` (e.g. `/camera`):
- `<ns>/gt/semantic`     sensor_msgs/Image mono16, class index per pixel, 65535 = unlabelled (void);
- `<ns>/gt/instance_ids` sensor_msgs/Image mono16, instance id per pixel, 0 = none;
- `<ns>/gt/segments`     omg_seg_msgs/SegmentArray, an alternative to the two label images;
- `<ns>/gt/label_info`   vision_msgs/LabelInfo, class index -> name (so ids can be mapped by name);
- `<ns>/gt/prompts`      vision_msgs/Detection2DArray, recorded prompts: bbox = box prompt (size 0 = point
  prompt at the centre), `id` = the ground-truth instance id the prompt points at.
Every ground-truth message carries the header stamp of the image it labels.
"""
from __future__ import annotations

from collections import Counter  # noqa: F401  (type of the skip counters)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from ..msgs import label_info_names, stamp_ns
from .typestore import BagError, typestore

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
GT_ROLES = {"gt/semantic": "semantic", "gt/instance_ids": "instances", "gt/segments": "segments",
            "gt/prompts": "prompts", "gt/objects_3d": "objects_3d"}
#: Depth inputs joined to the image by stamp like ground truth (roles), found next to the image topic: the first
#: candidate of each that the bag has (relative to the image topic's namespace, then its parent's, for RealSense's
#: /camera/color/image_raw + /camera/aligned_depth_to_color/image_raw layout).
DEPTH_CANDIDATES = {"depth": ("depth/image_raw", "aligned_depth_to_color/image_raw", "depth/image_rect_raw"),
                    "camera_info": ("camera_info",)}
#: Roles that are inputs or requests, not ground truth (a bag with only these has no ground truth).
NOT_GT_ROLES = {"prediction", "prompts", "depth", "camera_info", "objects_3d"}
LABEL_INFO_SUFFIX = "gt/label_info"


# ---------------------------------------------------------------------------------------------- writing
class BagWriter:
    """Writes messages to a new ROS 2 bag (sqlite3 or mcap); connections are added on first use of a topic.

    codec = MessageCodec.bags()
    with BagWriter(path, "mcap") as w: w.write("/camera/image_raw", codec.rgb_to_image(rgb, codec.header(t)), t)
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise ValueError(f"unknown bag storage {storage!r}; use one of {sorted(plugins)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag output {self.path} already exists (rosbags never overwrites a bag)")
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self._conns: dict[str, Any] = {}
        self.count = 0

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._writer.close()

    def write(self, topic: str, msg: Any, timestamp: int, latched: bool = False) -> None:
        """timestamp: receive time in ns (bag order); use the header stamp for generated data."""
        ts = typestore()
        if topic not in self._conns:
            kw: dict[str, Any] = {}
            if latched:  # transient_local, as the node publishes LabelInfo; `ros2 bag play` then re-latches it
                kw["offered_qos_profiles"] = [_latched_qos()]
            self._conns[topic] = self._writer.add_connection(topic, msg.__msgtype__, typestore=ts, **kw)
        self._writer.write(self._conns[topic], timestamp, ts.serialize_cdr(msg, msg.__msgtype__))
        self.count += 1


def _latched_qos() -> Any:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class BagFrame:
    """One image and the ground truth that shares its stamp. msgs: role -> deserialized message, roles are
    "image", "semantic", "instances", "segments", "prompts"; `missing` lists GT roles the bag has but this stamp
    lacks."""

    index: int
    stamp: int
    msgs: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    class_names: Optional[dict[int, str]] = None  # latest LabelInfo seen before this frame


@dataclass
class FrameTopics:
    image: str
    gt: dict[str, str]                 # role -> topic
    label_info: Optional[str] = None


def open_reader(path: str | Path, recover: bool = True):
    """An opened rosbags AnyReader, or BagError naming the bag and the reason.

    A damaged MCAP (e.g. a recording killed before its footer was written) that rosbags refuses is read with
    `McapRecoveryReader` when `recover` is set: every complete record up to the damage; `.recovered` says why.
    """
    from rosbags.highlevel import AnyReader

    p = Path(path)
    if not p.exists():
        raise BagError(f"bag {p} does not exist")
    try:
        reader = AnyReader([p], default_typestore=typestore())
        reader.open()
    except Exception as e:  # rosbags raises several types for damaged bags; all mean "cannot open"
        files = [p] if p.is_file() else sorted(p.glob("*.mcap"))
        if recover and len(files) == 1 and files[0].suffix == ".mcap":
            from .mcap_recovery import McapRecoveryReader

            return McapRecoveryReader(files[0], f"{type(e).__name__}: {e}")
        raise BagError(f"cannot open bag {p}: {type(e).__name__}: {e}") from e
    return reader


def discover_topics(reader: Any, image_topic: Optional[str] = None, gt_ns: Optional[str] = None,
                    depth_topics: Optional[dict[str, str]] = None) -> FrameTopics:
    """Pick the image topic (the only Image/CompressedImage topic outside `gt/`, unless given) and the GT topics
    under `gt_ns` (default: the image topic's namespace, else the only `<ns>/gt/*` namespace in the bag), and the
    depth inputs (DEPTH_CANDIDATES, or `depth_topics` {"depth": T, "camera_info": T} when given)."""
    topics = {c.topic: c.msgtype for c in reader.connections}
    listing = ", ".join(f"{t} [{m}]" for t, m in sorted(topics.items()))
    if image_topic is None:
        depth_like = {f"/{sfx}" for sfxs in DEPTH_CANDIDATES.values() for sfx in sfxs}
        cands = [t for t, m in topics.items() if m in IMAGE_TYPES and "/gt/" not in t and "/output/" not in t
                 and not any(t.endswith(d) for d in depth_like) and t not in (depth_topics or {}).values()]
        # image_transport pairs (X and X/compressed) are one camera: prefer the lossless raw stream
        cands = [t for t in cands if not (t.endswith("/compressed") and t[: -len("/compressed")] in cands)]
        if len(cands) != 1:
            raise BagError(f"{'no' if not cands else 'several'} image topics found ({cands}); pass --image-topic. "
                           f"Topics: {listing}")
        image_topic = cands[0]
    if image_topic not in topics:
        raise BagError(f"image topic {image_topic} not in the bag. Topics: {listing}")
    if topics[image_topic] not in IMAGE_TYPES:
        raise BagError(f"{image_topic} is a {topics[image_topic]}, not an image")
    if gt_ns is None:
        nss = sorted({t[: t.rindex("/gt/")] for t in topics if "/gt/" in t})
        own = image_topic.rsplit("/", 1)[0]
        gt_ns = own if own in nss else (nss[0] if len(nss) == 1 else own)
    gt = {role: f"{gt_ns}/{suffix}" for suffix, role in GT_ROLES.items() if f"{gt_ns}/{suffix}" in topics}
    own = image_topic.rsplit("/", 1)[0]
    for role, suffixes in DEPTH_CANDIDATES.items():
        given = (depth_topics or {}).get(role)
        found = [given] if given else [f"{ns}/{sfx}" for ns in (own, own.rsplit("/", 1)[0]) for sfx in suffixes
                                       if f"{ns}/{sfx}" in topics]
        if given and given not in topics:
            raise BagError(f"{role} topic {given} not in the bag. Topics: {listing}")
        if found:
            gt[role] = found[0]
    li = f"{gt_ns}/{LABEL_INFO_SUFFIX}"
    return FrameTopics(image_topic, gt, li if li in topics else None)


def iter_frames(reader: Any, topics: FrameTopics, skips: "Counter[str]", tolerance_ns: int = 0,
                window: int = 16, errors: Optional[list[str]] = None) -> Iterator[BagFrame]:
    """Stream frames in stamp order, joining GT to images by header stamp (|dt| <= tolerance_ns).

    Memory holds at most `window` pending stamps: a stamp still incomplete when the window is full is emitted
    without the missing GT (listed in `BagFrame.missing`) or, without an image, counted in `skips`. A read error
    (truncated or damaged bag) ends the stream; its message is appended to `errors`.
    """
    role_of = {topics.image: "image", **{t: r for r, t in topics.gt.items()}}
    conns = [c for c in reader.connections if c.topic in role_of or c.topic == topics.label_info]
    pending: dict[int, dict[str, Any]] = {}
    class_names: Optional[dict[int, str]] = None
    index = 0

    def emit(key: int) -> Optional[BagFrame]:
        nonlocal index
        entry = pending.pop(key)
        if "image" not in entry:
            for role in entry:
                skips[f"{role} ground truth without an image at the same stamp"] += 1
            return None
        frame = BagFrame(index, key, entry, [r for r in topics.gt if r not in entry], class_names)
        index += 1
        return frame

    def drain(force_all: bool) -> Iterator[BagFrame]:
        while pending:
            head = min(pending)
            complete = "image" in pending[head] and all(r in pending[head] for r in topics.gt)
            if not (complete or force_all or len(pending) > window):
                break
            f = emit(head)
            if f is not None:
                yield f

    try:
        for conn, _, raw in reader.messages(connections=conns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as e:  # a corrupt message: count it, keep going
                skips[f"undecodable message on {conn.topic} ({type(e).__name__})"] += 1
                continue
            if conn.topic == topics.label_info:
                class_names = label_info_names(msg)
                continue
            role, st = role_of[conn.topic], stamp_ns(msg)
            near = [k for k in pending if abs(k - st) <= tolerance_ns and role not in pending[k]]
            key = min(near, key=lambda k: abs(k - st)) if near else st
            if key in pending and role in pending[key]:
                skips[f"duplicate {role} message at one stamp"] += 1
                continue
            pending.setdefault(key, {})[role] = msg
            yield from drain(False)
    except Exception as e:  # truncated / damaged bag: evaluate what was read, say where it stopped
        if errors is not None:
            errors.append(f"bag read stopped after {index} frames: {type(e).__name__}: {e}")
        else:
            raise
    yield from drain(True)
