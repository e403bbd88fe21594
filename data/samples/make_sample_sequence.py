"""Write the demo's bundled sample sequence: data/samples/robot_scene/ (generated robot-workspace video).

    scripts/with_env.sh .venv/bin/python data/samples/make_sample_sequence.py

Frames come from the synthetic scene generator (omg_seg_core.data.synth, video mode, split "val": scenes the
shipped model was not trained on). The first "val" sequence whose first frame shows a red box is used, so the
demo's text request "segment the red box" has a target. Output (a few hundred KB):
  frame_XXX.jpg     RGB frames (JPEG quality 92)
  panoptic_XXX.png  ground-truth segment ids (uint16 PNG, 0 = void), to score what the demo finds
  depth_XXX.png     registered depth through the depth-sensor model (uint16 PNG, millimetres, 0 = no reading)
  sequence.json     the camera intrinsics and per-frame segments: id, class, colour, phrase, track id, bbox
                    (COCO xywh), and for things their true 3D box (center_3d, size_3d: camera optical frame, m)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from omg_seg_core.data.synth import SynthGenerator

OUT = Path(__file__).resolve().parent / "robot_scene"


def has_red_box(frame) -> bool:
    return any(s.is_thing and s.colour == "red" and s.name == "box" and s.area >= 400 for s in frame.segments)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--max-tries", type=int, default=200)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    gen = SynthGenerator(w, h, split="val", seed=0)
    try:
        for seq in range(args.max_tries):
            first = next(iter(gen.sequence(seq, 1)))
            if has_red_box(first):
                break
        else:
            raise SystemExit(f"no sequence with a red box in {args.max_tries} tries")
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*_*.*"):
            old.unlink()
        meta = {"generator": {"split": "val", "seed": 0, "sequence": seq, "size": [w, h]}, "camera": None,
                "frames": []}
        for t, f in enumerate(gen.sequence(seq, args.frames)):
            cv2.imwrite(str(args.out / f"frame_{t:03d}.jpg"), f.rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
            cv2.imwrite(str(args.out / f"panoptic_{t:03d}.png"), f.panoptic.astype(np.uint16))
            d = f.sensor_depth()
            cv2.imwrite(str(args.out / f"depth_{t:03d}.png"),
                        np.where(np.isfinite(d), np.round(d * 1000), 0).astype(np.uint16))
            meta["camera"] = {k: getattr(f.camera, k) for k in ("fx", "fy", "cx", "cy", "width", "height")}
            meta["frames"].append({"index": t, "segments": [
                {"id": s.id, "class": s.name, "is_thing": s.is_thing, "colour": s.colour, "phrase": s.phrase,
                 "track_id": s.track_id, "bbox": list(s.bbox),
                 **({"center_3d": [round(v, 5) for v in s.center_3d], "size_3d": [round(v, 5) for v in s.size_3d]}
                    if s.is_thing else {})} for s in f.segments]})
        (args.out / "sequence.json").write_text(json.dumps(meta, indent=1))
    finally:
        gen.close()
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.frames} frames of val sequence {seq} to {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
