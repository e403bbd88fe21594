"""The node's parameters: names, defaults, descriptions, validation and QoS profiles.

Names are the user interface (config/perception.yaml, launch arguments, `ros2 param set`):
- thresholds use the `TaskThresholds` field names unchanged (flat: `object_mask_thr`, `text_max_results`, ...);
- tracker settings are `tracking.<TrackerConfig field>` plus `tracking.enabled`;
- outputs are `outputs.<name>` booleans; input and QoS under `input.*` / `qos.*`;
- `cameras` names the cameras served by the one model (camera names: `check_cameras`).
Which parameters apply at run time and which need a reconfigure is listed in `RUNTIME` / `RECONFIGURE`.
"""
from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import Any

from omg_seg_core.config import TaskThresholds

from omg_seg_core.video import TASKS

#: (name, default, description). Defaults match config/perception.yaml.
CORE: list[tuple[str, Any, str]] = [
    ("autostart", True, "configure and activate on start-up (for users without a lifecycle manager)"),
    ("model", "omg_seg_tiny", "model name: omg_seg_tiny | omg_seg_convl (aliases tiny, convl)"),
    ("weights", "", "checkpoint path; '' = the shipped models/<model>.pth"),
    ("backbone_weights", "", "open_clip ConvNeXt-L weights file (omg_seg_convl only)"),
    ("allow_random_weights", False, "run an UNTRAINED model when no checkpoint exists (plumbing tests only)"),
    ("backend", "auto", "runtime: auto (on a CPU the faster of torch and onnxruntime, timed at configure; on a "
                        "GPU tensorrt, else onnxruntime, else torch) | torch | onnxruntime | tensorrt"),
    ("device", "cpu", "cpu | cuda | cuda:N | auto"),
    ("dtype", "float32", "float32 | float16 (GPU)"),
    ("input_long_side", 0, "resize the long image side to this before the model; 0 = the model's default"),
    ("cpu_threads", 0, "CPU threads for inference (torch intra-op, ONNX Runtime); 0 = the libraries' default"),
    ("postprocess_threads", 1, "torch threads of the post-processing thread (tracking, masks, outputs), which runs "
                               "beside the next frame's image graph; 0 = cpu_threads (applied at the next activate)"),
    ("onnxruntime_spinning", False, "ONNX Runtime workers spin while a frame runs: faster on cores the node has to "
                                    "itself, slower on a shared CPU"),
    ("cameras", [""], "camera names served by this ONE model, e.g. [front, left, right]: each gets ~/<name>/input/"
                      "image (+ compressed, depth, camera_info) and ~/<name>/output/...; [''] = one unnamed camera on "
                      "~/input/image and ~/output/... (applied at the next configure)"),
    ("batch_window_ms", 5.0, "after the first camera's frame, wait at most this long for the other live cameras' "
                             "frames so they run in the same batch (a camera without a new frame is not waited for)"),
    ("task", "panoptic", "per-frame task: panoptic | instances | semantic"),
    ("vocabulary_file", "", "vocabulary YAML (things/stuff); '' = the checkpoint's vocabulary"),
    ("input.compressed", False, "subscribe to ~/input/image/compressed (sensor_msgs/CompressedImage)"),
    ("qos.reliability", "best_effort", "input reliability: best_effort (sensor data) | reliable"),
    ("qos.depth", 1, "input queue depth (the worker only ever takes the latest frame)"),
    ("outputs.semantic", True, "publish ~/output/semantic (mono16 class ids, 65535 unlabelled)"),
    ("outputs.label_info", True, "publish latched ~/output/label_info (vision_msgs/LabelInfo)"),
    ("outputs.instance_ids", True, "publish ~/output/instance_ids (mono16 track ids, 0 = none)"),
    ("outputs.detections", True, "publish ~/output/detections (vision_msgs/Detection2DArray)"),
    ("outputs.segments", True, "publish ~/output/segments (omg_seg_msgs/SegmentArray)"),
    ("outputs.overlay", True, "publish ~/output/overlay (rgb8 colour overlay for RViz)"),
    ("outputs.targets", True, "publish ~/output/targets (persistent prompt/text targets)"),
    ("outputs.diagnostics", True, "publish /diagnostics"),
    ("diagnostics_period", 1.0, "seconds between /diagnostics messages"),
    ("tracking.enabled", True, "track things across frames (stable ids) and keep prompt/text targets"),
    ("limits.max_image_pixels", 8192 * 8192, "largest input image (width x height; raw, compressed (checked on the "
                                             "header before decoding) and request images); larger ones are refused"),
    ("limits.max_prompts", 64, "most points + boxes in one ~/segment_prompt request"),
    ("limits.max_text_length", 512, "longest ~/segment_text text, in characters"),
    ("limits.max_results", 1000, "largest max_results of one ~/segment_text request"),
    ("limits.max_vocabulary", 2000, "most classes in a vocabulary (~/set_vocabulary, vocabulary_file)"),
    ("limits.max_exemplars", 32, "most taught exemplar names (~/add_exemplar; each keeps up to 8 views)"),
    ("exemplars.file", "", "taught exemplars (.npz from ~/save_exemplars) loaded at configure, and the file "
                           "~/save_exemplars / ~/load_exemplars use when their path is empty; '' = none"),
    ("limits.max_cameras", 8, "most cameras one node serves (parameter cameras; the model's largest batch is the "
                              "number of configured cameras)"),
    ("depth.enabled", False, "subscribe to ~/input/depth (16UC1 mm or 32FC1 m, registered to the colour image) and "
                             "~/input/camera_info (the colour camera's) and give every segment, target and answer "
                             "its 3D position (docs/ros.md, 'Depth and 3D')"),
    ("depth.max_skew_ms", 50.0, "pair a colour frame with the depth image nearest in stamp within this many ms; "
                                "without one the frame is published in 2D only (never held back)"),
    ("pointing.topic", "", "geometry_msgs/PointStamped topic of pointing gestures (e.g. /clicked_point from RViz's "
                           "Publish Point); the latest is the hint of ~/segment_text requests without one; '' = off"),
    ("pointing.max_age_s", 10.0, "a pointing gesture older than this is not used"),
    ("outputs.detections_3d", True, "publish ~/output/detections_3d (vision_msgs/Detection3DArray; with depth)"),
    ("outputs.markers", True, "publish ~/output/markers (visualization_msgs/MarkerArray boxes + labels; with depth)"),
    ("outputs.points", False, "publish ~/output/points (labelled sensor_msgs/PointCloud2; with depth)"),
    ("points.decimation", 4, "~/output/points keeps every N-th pixel of every N-th row"),
]

#: Applied immediately when changed at run time.
RUNTIME_PREFIXES = ("outputs.", "tracking.", "limits.", "depth.", "points.", "pointing.", "exemplars.")
RUNTIME = {"task", "vocabulary_file", "qos.reliability", "qos.depth", "input.compressed", "diagnostics_period",
           "batch_window_ms"}
#: Never changed after start-up (ROS read_only): set them in the YAML or on the command line.
READ_ONLY = {"autostart"}
#: Stored, applied at the next configure (model weights must be reloaded).
RECONFIGURE = {"model", "weights", "backbone_weights", "allow_random_weights", "backend", "device", "dtype",
               "input_long_side", "cpu_threads", "postprocess_threads", "onnxruntime_spinning", "cameras"}


#: Thresholds that are fractions in [0, 1]. For these a negative parameter value means "the model's default": the
#: value the checkpoint records as tuned for it, else the official one (`OMGSegPredictor.default_thresholds`).
UNIT_THRESHOLDS = ("mask_threshold", "object_mask_thr", "iou_thr", "instance_score_thr", "text_score_thr")
#: Node defaults that differ from TaskThresholds(): iou_thr follows the model (shipped omg-seg-tiny 0.6, official 0.8).
THRESHOLD_DEFAULTS = {"iou_thr": -1.0}


#: Numeric ranges, declared in each ParameterDescriptor (`ros2 param describe` shows them; ROS refuses values
#: outside before the node sees them; NaN is outside every range). Unit thresholds allow < 0 = the model's default.
RANGES: dict[str, tuple[float, float]] = {
    "input_long_side": (0, 4096), "cpu_threads": (0, 256), "postprocess_threads": (0, 256), "qos.depth": (1, 100),
    "diagnostics_period": (0.05, 60.0),
    "limits.max_image_pixels": (1, 16384 * 16384), "limits.max_prompts": (1, 10000),
    "limits.max_text_length": (1, 100000), "limits.max_results": (1, 100000), "limits.max_vocabulary": (1, 65534),
    "limits.max_cameras": (1, 64), "batch_window_ms": (0.0, 1000.0),
    **{n: (-1.0, 1.0) for n in UNIT_THRESHOLDS},
    "max_per_image": (1, 10000), "text_max_results": (1, 1000), "text_position_rel": (0.0, 1.0),
    "text_confidence_power": (0.0, 16.0), "text_colour_power": (0.0, 16.0), "box_prompt_margin": (-1.0, 10.0),
    "split_apart_gap": (-1.0, 1.0), "split_apart_min_fraction": (0.0, 0.5), "edge_refine_radius": (0, 16),
    "edge_refine_eps": (0.0, 1.0),
    **{f"tracking.{n}": (0.0, 10.0) for n in ("w_embedding", "w_iou", "w_class", "tentative_penalty",
                                               "recover_box_expand", "target_box_expand")},
    **{f"tracking.{n}": (0.0, 1.0) for n in ("match_threshold", "embedding_momentum", "reid_threshold", "min_score",
                                              "target_min_similarity", "target_reacquire_threshold",
                                              "recover_min_iou", "recover_max_overlap")},
    "tracking.recover_min_score": (0.0, 2.0), "tracking.reset_on_time_gap_s": (0.0, 86400.0),
    "tracking.target_max_lost_s": (0.0, 86400.0), "tracking.iou_grid": (4, 1024), "tracking.n_init": (1, 1000),
    **{f"tracking.{n}": (0, 1_000_000) for n in ("tentative_max_age", "max_age", "reid_max_age", "reid_memory_size",
                                                  "motion_horizon", "target_max_lost_frames", "recover_max_gap")},
    "tracking.stuff_id_offset": (2, 2**31 - 1),
    "depth.max_skew_ms": (0.0, 10000.0), "depth.min_m": (0.0, 1000.0), "depth.max_m": (0.001, 1000.0),
    "depth.erode_px": (0, 64), "depth.min_points": (1, 1_000_000), "depth.percentile": (0.0, 49.0),
    "depth.outlier_mads": (0.1, 100.0), "depth.outlier_min_m": (0.0, 10.0), "depth.planes": (0, 100),
    "depth.max_points": (1, 10_000_000), "points.decimation": (1, 64), "pointing.max_age_s": (0.0, 86400.0),
    "text_hint_scale_px": (0.5, 10000.0), "like_threshold": (0.0, 1.0), "like_max_results": (1, 1000),
    "limits.max_exemplars": (1, 10000),
}


def descriptor(name: str, default: Any, description: str):
    """rcl_interfaces/ParameterDescriptor of a parameter: its description, range (RANGES) and read_only flag."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    d = ParameterDescriptor(description=description, read_only=name in READ_ONLY)
    if name in RANGES and not isinstance(default, bool):
        lo, hi = RANGES[name]
        if isinstance(default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        elif isinstance(default, int):
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


def threshold_params() -> list[tuple[str, Any, str]]:
    """TaskThresholds fields as parameters (same names; same defaults except THRESHOLD_DEFAULTS)."""
    d = TaskThresholds()
    out = []
    for f in fields(TaskThresholds):
        desc = f"TaskThresholds.{f.name}"
        if f.name in UNIT_THRESHOLDS:
            desc += "; < 0 = the model's default (the checkpoint's tuned value, else official)"
        out.append((f.name, THRESHOLD_DEFAULTS.get(f.name, getattr(d, f.name)), desc))
    return out


def is_model_default(name: str, value: Any) -> bool:
    """True when a threshold parameter value asks for the model's default (a negative fraction)."""
    return name in UNIT_THRESHOLDS and isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0


def tracker_params() -> list[tuple[str, Any, str]]:
    """TrackerConfig fields as `tracking.<name>` parameters (empty if tracking is not importable)."""
    try:
        from omg_seg_core.tracking import TrackerConfig
    except ImportError:
        return []
    d = TrackerConfig()
    out = []
    for f in fields(TrackerConfig):
        v = getattr(d, f.name)
        if isinstance(v, list):
            continue  # per-class gate overrides (parallel lists) are not exposed as parameters
        out.append((f"tracking.{f.name}", v, f"TrackerConfig.{f.name}"))
    return out


def depth_params() -> list[tuple[str, Any, str]]:
    """DepthConfig fields as `depth.<name>` parameters (spatial/config.py documents each)."""
    from omg_seg_core.spatial import DepthConfig

    d = DepthConfig()
    return [(f"depth.{f.name}", getattr(d, f.name), f"DepthConfig.{f.name}") for f in fields(DepthConfig)]


def depth_config_from(values: dict[str, Any]):
    """DepthConfig from the node's `depth.*` values (ValueError naming a bad field)."""
    from omg_seg_core.spatial import DepthConfig

    return DepthConfig(**{f.name: values[f"depth.{f.name}"] for f in fields(DepthConfig)
                          if f"depth.{f.name}" in values})


def all_params() -> list[tuple[str, Any, str]]:
    return CORE + threshold_params() + tracker_params() + depth_params()


def coerce(name: str, default: Any, value: Any) -> Any:
    """Value of the default's type (ROS YAML gives ints for doubles written as '1'); raises ValueError."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a bool, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings, got {value!r}")
        return list(value)
    return value


#: A camera name: one ROS name token (topics ~/<name>/input/image): a letter, then letters, digits, single '_'.
_CAMERA_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*$")


def check_cameras(names: Any, max_cameras: int) -> list[str]:
    """The camera list of parameter `cameras`, checked: at least one, at most `max_cameras` (limits.max_cameras),
    each a valid ROS name token, no duplicates; [''] alone = the one unnamed camera. ValueError with the reason."""
    names = list(names)
    if not names:
        raise ValueError("cameras: give at least one camera name ([''] = one unnamed camera on ~/input/image)")
    if len(names) > max_cameras:
        raise ValueError(f"cameras: {len(names)} cameras, limit {max_cameras} (parameter limits.max_cameras)")
    if "" in names and len(names) > 1:
        raise ValueError("cameras: '' (the unnamed camera on ~/input/image) only alone; name every camera of several")
    for n in names:
        if n and not _CAMERA_NAME.match(n):
            raise ValueError(f"cameras: '{n}' is not a valid camera name (a ROS name token: a letter first, then "
                             "letters, digits and single underscores; it becomes ~/<name>/input/image)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"cameras: duplicate name(s) {dup}")
    return names


#: Devices the node can be told to use.
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def validate(name: str, value: Any) -> None:
    """Checks beyond the type; raises ValueError with a reason the caller of set_parameters sees."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if name in RANGES and not isinstance(value, bool):
        lo, hi = RANGES[name]
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    if name == "device" and not _DEVICE.match(str(value)):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got '{value}'")
    if name == "model":
        from omg_seg_core.config import get_model_config

        try:
            get_model_config(value)
        except KeyError as e:
            raise ValueError(f"model: {e.args[0]}") from None
    if name == "cameras":
        check_cameras(value, RANGES["limits.max_cameras"][1])  # the configured limit is checked with the list
    if name == "task" and value not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got '{value}'")
    if name == "qos.reliability" and value not in ("best_effort", "reliable"):
        raise ValueError(f"qos.reliability must be best_effort or reliable, got '{value}'")
    if name == "qos.depth" and not 1 <= value <= 100:
        raise ValueError(f"qos.depth must be in [1, 100], got {value}")
    if name == "backend" and value != "auto":
        from omg_seg_core.runtime.select import canonical_name

        canonical_name(value)  # ValueError naming the choices and aliases
    if name == "dtype" and value not in ("float32", "float16", "fp32", "fp16"):
        raise ValueError(f"dtype must be float32 or float16, got '{value}'")
    if name == "input_long_side" and value != 0 and not 32 <= value <= 4096:
        raise ValueError(f"input_long_side must be 0 or in [32, 4096], got {value}")
    if name in ("cpu_threads", "postprocess_threads") and not 0 <= value <= 256:
        raise ValueError(f"{name} must be 0 (library default) or in [1, 256], got {value}")
    if name == "diagnostics_period" and not 0.05 <= value <= 60:
        raise ValueError(f"diagnostics_period must be in [0.05, 60] s, got {value}")
    if name in {f.name for f in fields(TaskThresholds)} and not is_model_default(name, value):
        TaskThresholds().updated(**{name: value})  # the core's own checks (one place), e.g. edge_refine_eps > 0


def input_qos(reliability: str, depth: int):
    """Input subscription QoS: sensor-data (best effort, keep last) unless `reliable` is asked for."""
    from rclpy.qos import QoSProfile, qos_profile_sensor_data, DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    if reliability == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    q = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "reliability", "durability")},
                   depth=depth)
    return q


def latched_qos():
    """transient_local, depth 1: late subscribers (RViz, bag recorders) still get label_info."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


__all__ = ["CORE", "RUNTIME", "RUNTIME_PREFIXES", "RECONFIGURE", "READ_ONLY", "UNIT_THRESHOLDS", "THRESHOLD_DEFAULTS",
           "RANGES", "descriptor", "all_params", "threshold_params", "is_model_default",
           "tracker_params", "depth_params", "depth_config_from", "coerce", "validate", "input_qos", "latched_qos",
           "check_cameras"]
