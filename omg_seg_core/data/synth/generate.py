"""Write a synthetic dataset in COCO-panoptic format (+ a video/track JSON in video mode).

    python -m omg_seg_core.data.synth.generate --out DIR --frames N --seed S --size 320x240 [--split train|val|heldout|novel]
    python -m omg_seg_core.data.synth.generate --out DIR --video --sequences K --length L --seed S

Layout of DIR: ``images/<name>.jpg``, ``panoptic/<name>.png`` (id = R + 256 G + 256^2 B), ``annotations.json``,
``video.json`` (video mode), ``records/<name>.json`` (one per frame, written last: a frame with a record is done),
``generator.json`` (the settings; a re-run with other split/seed/size/mode/length/format is refused).
Re-running with the same arguments skips finished frames (whole sequences in video mode) and rebuilds the JSONs;
output is identical to an uninterrupted run because every frame depends only on (split, seed, index).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from ..coco_panoptic import id_to_rgb, segments_info_json, write_image, write_json, write_video_json
from . import world
from .generator import SynthFrame, SynthGenerator


def _record(frame: SynthFrame, name: str, image_id: int, ext: str) -> dict:
    h, w = frame.size
    image = {"id": image_id, "file_name": f"{name}.{ext}", "width": w, "height": h, "split": frame.split, "seed": frame.seed}
    if frame.sequence is not None:
        image.update(sequence_id=int(frame.sequence), frame_index=int(frame.index))
    return {"image": image, "annotation": {"image_id": image_id, "file_name": f"{name}.png",
                                           "segments_info": segments_info_json(frame.segments)}}


def _save(out: Path, frame: SynthFrame, name: str, image_id: int, ext: str) -> dict:
    rec = _record(frame, name, image_id, ext)
    write_image(out / "images" / rec["image"]["file_name"], frame.rgb)
    write_image(out / "panoptic" / rec["annotation"]["file_name"], id_to_rgb(frame.panoptic))
    write_json(out / "records" / f"{name}.json", rec)
    return rec


def _load_record(out: Path, name: str) -> Optional[dict]:
    p = out / "records" / f"{name}.json"
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
    except json.JSONDecodeError:
        return None  # interrupted write: regenerate
    files = (out / "images" / rec["image"]["file_name"], out / "panoptic" / rec["annotation"]["file_name"])
    return rec if all(f.is_file() for f in files) else None


#: Bump when the generator's output for a given (split, seed, index) changes, so old folders are not mixed with new.
MANIFEST_FORMAT = "omg_seg_synth/1"


def _check_manifest(out: Path, settings: dict) -> None:
    """Resuming is only safe with the settings the folder was started with: refuse to mix datasets."""
    path = out / "generator.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            what = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise ValueError(f"{out} was generated with other settings ({what}); use another --out or delete the folder")
    else:
        write_json(path, settings)


def write_dataset(out: Path, split: str = "train", seed: int = 0, size: tuple[int, int] = (320, 240), frames: int = 0,
                  sequences: int = 0, length: int = 30, image_format: str = "jpg", progress: bool = True) -> dict:
    """Generate ``frames`` single frames, or ``sequences`` video sequences of ``length`` frames, into ``out``.

    Returns a summary dict (counts, generated vs. reused frames, seconds). Frame names are
    ``<split>_s<seed>_<index:06d>`` or ``<split>_s<seed>_v<seq:04d>_<t:04d>``.
    """
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got '{image_format}'")
    if frames < 0 or sequences < 0 or length < 1:
        raise ValueError(f"frames/sequences must be >= 0 and length >= 1 (got {frames}, {sequences}, {length})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, {"format": MANIFEST_FORMAT, "split": split, "seed": seed, "size": list(size),
                          "mode": "video" if sequences else "frames", "length": length if sequences else None,
                          "image_format": image_format})
    gen: Optional[SynthGenerator] = None
    records, videos, made, t0 = [], [], 0, time.time()

    def generator() -> SynthGenerator:
        nonlocal gen
        if gen is None:  # only create an OpenGL context when something has to be rendered
            gen = SynthGenerator(size[0], size[1], split=split, seed=seed)
        return gen

    try:
        if sequences:
            for k in tqdm(range(sequences), desc=f"{split} sequences", disable=not progress):
                names = [f"{split}_s{seed}_v{k:04d}_{t:04d}" for t in range(length)]
                recs = [_load_record(out, n) for n in names]
                if any(r is None for r in recs):
                    recs = [_save(out, f, n, k * length + t, image_format)
                            for t, (f, n) in enumerate(zip(generator().sequence(k, length), names))]
                    made += length
                records += recs
                videos.append(_video_entry(k, f"{split}_s{seed}_v{k:04d}", recs))
        else:
            for i in tqdm(range(frames), desc=f"{split} frames", disable=not progress):
                name = f"{split}_s{seed}_{i:06d}"
                rec = _load_record(out, name)
                if rec is None:
                    rec = _save(out, generator().frame(i), name, i, image_format)
                    made += 1
                records.append(rec)
    finally:
        if gen is not None:
            gen.close()
    info = {"description": "omg-seg-ros synthetic robot workspace", "split": split, "seed": seed,
            "size": list(size), "held_out_combos": sorted(map(list, world.HELD_OUT_COMBOS)),
            "combo_mode": world.SPLIT_COMBO_MODE[split], "category_id": "class id + 1 (things first, then stuff)"}
    write_json(out / "annotations.json", {
        "info": info, "images": [r["image"] for r in records], "annotations": [r["annotation"] for r in records],
        "categories": [c.to_json() for c in world.CATEGORIES]})
    if sequences:
        write_video_json(out / "video.json", videos)
    return {"out": str(out), "frames": len(records), "generated": made, "reused": len(records) - made,
            "seconds": round(time.time() - t0, 2)}


def _video_entry(k: int, name: str, recs: list[dict]) -> dict:
    tracks: dict[int, dict] = {}
    for r in recs:
        t = r["image"]["frame_index"]
        for s in r["annotation"]["segments_info"]:
            if "track_id" in s:
                tr = tracks.setdefault(s["track_id"], {"track_id": s["track_id"], "category_id": s["category_id"],
                                                       "attributes": s["attributes"], "frames": []})
                tr["frames"].append(t)
    return {"id": k, "name": name, "length": len(recs),
            "frames": [{"image_id": r["image"]["id"], "frame_index": r["image"]["frame_index"],
                        "file_name": r["image"]["file_name"]} for r in recs],
            "tracks": [tracks[i] for i in sorted(tracks)]}


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 320x240, got '{text}'") from None
    return w, h


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output folder (created; re-runs resume)")
    ap.add_argument("--frames", type=int, default=100, help="number of single frames (ignored with --video)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=parse_size, default=(320, 240), help="WIDTHxHEIGHT (default 320x240)")
    ap.add_argument("--split", default="train", choices=sorted(world.SPLIT_SEED_CODE),
                    help="train/val exclude the held-out (colour, shape) combos; heldout includes them (>= 1 per "
                         "scene); novel uses only them")
    ap.add_argument("--video", action="store_true", help="write video sequences with persistent track ids")
    ap.add_argument("--sequences", type=int, default=10)
    ap.add_argument("--length", type=int, default=30, help="frames per sequence")
    ap.add_argument("--image-format", default="jpg", choices=("jpg", "png"))
    a = ap.parse_args(argv)
    summary = write_dataset(a.out, a.split, a.seed, a.size, frames=0 if a.video else a.frames,
                            sequences=a.sequences if a.video else 0, length=a.length, image_format=a.image_format)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
