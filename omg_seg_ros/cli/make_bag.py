"""`omg-seg-make-bag`: write a ROS 2 bag of generated scenes (images + ground-truth topics) so `omg-seg-eval` can
be tried end to end without a robot. Works without a ROS install (rosbags).

Topics written (namespace `--ns`, default /camera; conventions in docs/evaluation.md):
  <ns>/image_raw (sensor_msgs/Image rgb8), optionally <ns>/image_raw/compressed (JPEG; --compressed-only: only it),
  <ns>/gt/semantic + <ns>/gt/instance_ids (mono16), <ns>/gt/label_info (vision_msgs/LabelInfo, latched),
  optionally <ns>/gt/segments (omg_seg_msgs/SegmentArray) and <ns>/gt/prompts (vision_msgs/Detection2DArray);
  with --depth: <ns>/depth/image_raw (16UC1 mm, registered to the colour image; the sensor model's noise unless
  --depth clean), <ns>/camera_info (sensor_msgs/CameraInfo) and <ns>/gt/objects_3d (vision_msgs/Detection3DArray:
  each thing's true 3D box in the camera optical frame, id = its instance id).
Stamps start at 1,700,000,000 s and advance 100 ms per frame (10 Hz); receive time = stamp.

    omg-seg-make-bag --out /tmp/sample_bag --frames 8 --seed 0 --format mcap [--video] [--prompts] [--depth]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from omg_seg_ros.bag.io import BagWriter
from omg_seg_ros.msgs import MessageCodec, Prompt

T0_NS = 1_700_000_000 * 1_000_000_000
PERIOD_NS = 100_000_000


@dataclass
class Sample:
    """One frame to write. semantic: uint16 [H, W] (65535 void); instance_ids: uint16 [H, W] (0 none)."""

    rgb: np.ndarray
    semantic: Optional[np.ndarray] = None
    instance_ids: Optional[np.ndarray] = None
    prompts: list[Prompt] = field(default_factory=list)
    segments: Optional[object] = None  # Segments for <ns>/gt/segments
    depth: Optional[np.ndarray] = None   # float32 [H, W] metres (NaN = none) for <ns>/depth/image_raw
    camera: Optional[object] = None      # PinholeCamera for <ns>/camera_info
    objects_3d: Optional[object] = None  # Segments of the things with true boxes_3d, for <ns>/gt/objects_3d


def write_bag(out: str | Path, samples: Iterable[Sample], class_names: Sequence[str], storage: str = "mcap",
              ns: str = "/camera", compressed: bool = False, raw: bool = True, frame_id: str = "camera",
              progress: bool = False, total: Optional[int] = None) -> int:
    """Write `samples` in order as a bag at `out` (must not exist). Returns the number of frames written."""
    from tqdm import tqdm

    n = 0
    codec = MessageCodec.bags()
    with BagWriter(out, storage) as w:
        w.write(f"{ns}/gt/label_info", codec.label_info_msg(class_names, codec.header(T0_NS, frame_id)), T0_NS, latched=True)
        for s in tqdm(samples, total=total, disable=not progress, unit="frame", desc="make-bag"):
            t = T0_NS + n * PERIOD_NS
            if raw:
                w.write(f"{ns}/image_raw", codec.rgb_to_image(s.rgb, codec.header(t, frame_id)), t)
            if compressed:
                w.write(f"{ns}/image_raw/compressed", codec.rgb_to_compressed(s.rgb, codec.header(t, frame_id), quality=None), t)
            if s.semantic is not None:
                w.write(f"{ns}/gt/semantic", codec.numpy_to_image(s.semantic, "mono16", codec.header(t, frame_id)), t)
            if s.instance_ids is not None:
                w.write(f"{ns}/gt/instance_ids", codec.numpy_to_image(s.instance_ids, "mono16", codec.header(t, frame_id)), t)
            if s.segments is not None:
                w.write(f"{ns}/gt/segments", codec.segments_to_msg(s.segments, codec.header(t, frame_id)), t)
            if s.prompts:
                w.write(f"{ns}/gt/prompts", codec.prompts_msg(s.prompts, codec.header(t, frame_id)), t)
            if s.depth is not None:
                w.write(f"{ns}/depth/image_raw", codec.depth_image_msg(s.depth, codec.header(t, frame_id)), t)
                w.write(f"{ns}/camera_info", codec.camera_info_msg(s.camera, codec.header(t, frame_id)), t)
            if s.objects_3d is not None:
                w.write(f"{ns}/gt/objects_3d", codec.detections_3d_msg(s.objects_3d, codec.header(t, frame_id)), t)
            n += 1
    return n


def prompts_for(instance_ids: np.ndarray, rng: np.random.Generator, max_prompts: int = 3) -> list[Prompt]:
    """Up to `max_prompts` instances, alternating box prompts (tight mask box) and point prompts (the mask pixel
    nearest the mask centroid, so the point is always inside the object)."""
    ids = [int(i) for i in np.unique(instance_ids) if i > 0]
    out = []
    for k, i in enumerate(rng.permutation(ids)[:max_prompts] if ids else []):
        ys, xs = np.nonzero(instance_ids == i)
        if k % 2 == 0:
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
            out.append(Prompt("box", box, int(i)))
        else:
            j = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
            out.append(Prompt("point", np.array([xs[j] + 0.5, ys[j] + 0.5] * 2, np.float32), int(i)))
    return out


def synthetic_samples(frames: int, seed: int = 0, split: str = "val", size: tuple[int, int] = (320, 240),
                      video: bool = False, with_prompts: bool = False, with_segments: bool = False,
                      depth: str = "") -> Iterable[Sample]:
    """Frames from the scene generator (omg_seg_core.data.synth); in video mode one sequence whose thing
    instance ids are the generator's persistent track ids. depth: "" (none), "clean" or "noisy" (the
    depth-sensor model, data/synth/depth_sensor.py)."""
    from omg_seg_core.data.synth.generator import SynthGenerator

    gen = SynthGenerator(size[0], size[1], split=split, seed=seed)
    rng = np.random.default_rng([seed, 7])
    try:
        source = gen.sequence(0, frames) if video else (gen.frame(i) for i in range(frames))
        for f in source:
            inst = np.zeros(f.panoptic.shape, np.uint16)
            for s in f.segments:
                if s.is_thing:
                    inst[f.panoptic == s.id] = s.track_id
            d = None if not depth else (f.depth if depth == "clean" else f.sensor_depth())
            yield Sample(f.rgb, f.semantic, inst, prompts_for(inst, rng) if with_prompts else [],
                         f.to_segments() if with_segments else None, d, f.camera if depth else None,
                         true_objects_3d(f) if depth else None)
    finally:
        gen.close()


def true_objects_3d(frame) -> Any:
    """The frame's things as Segments whose boxes_3d are their TRUE 3D boxes (track id = instance id)."""
    from omg_seg_core.structures import QUALITY_OK, Boxes3D

    seg = frame.to_segments()
    seg = seg[seg.is_thing]
    things = frame.things()
    b = Boxes3D.empty(len(seg))
    b.position[:] = np.array([t.center_3d for t in things], np.float32).reshape(-1, 3)
    b.surface[:] = b.position
    b.size[:] = np.array([t.size_3d for t in things], np.float32).reshape(-1, 3)
    b.quality[:] = QUALITY_OK
    seg.boxes_3d = b
    return seg


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from e
    return w, h


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="omg-seg-make-bag", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="bag folder to create (must not exist)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=["mcap", "sqlite3"], default="mcap")
    ap.add_argument("--split", default="val", help="generator split: train | val | heldout | novel")
    ap.add_argument("--size", type=parse_size, default=(320, 240), help="WxH (default 320x240)")
    ap.add_argument("--video", action="store_true", help="one moving sequence (persistent instance ids)")
    ap.add_argument("--compressed", action="store_true", help="also write <ns>/image_raw/compressed (JPEG)")
    ap.add_argument("--compressed-only", action="store_true", help="write only the JPEG stream (no raw images)")
    ap.add_argument("--prompts", action="store_true", help="record point/box prompts on <ns>/gt/prompts")
    ap.add_argument("--segments", action="store_true", help="also write <ns>/gt/segments (SegmentArray)")
    ap.add_argument("--depth", nargs="?", const="noisy", default="", choices=["clean", "noisy"],
                    help="also write depth (16UC1), camera_info and the true 3D boxes; noisy (default) = the "
                         "depth-sensor model, clean = perfect depth")
    ap.add_argument("--ns", default="/camera")
    a = ap.parse_args(argv)
    if a.frames < 1:
        ap.error(f"--frames must be >= 1, got {a.frames}")
    if a.out.exists():
        ap.error(f"{a.out} already exists; choose a new folder (bags are never overwritten)")
    from omg_seg_core.data.synth import world

    samples = synthetic_samples(a.frames, a.seed, a.split, a.size, a.video, a.prompts, a.segments, a.depth)
    n = write_bag(a.out, samples, world.CLASS_NAMES, a.format, a.ns, a.compressed or a.compressed_only,
                  raw=not a.compressed_only, progress=True, total=a.frames)
    print(f"wrote {n} frames to {a.out} ({a.format})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
