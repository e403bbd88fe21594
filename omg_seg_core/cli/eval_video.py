"""Evaluate video tracking on generated sequences with ground-truth track ids.

    python -m omg_seg_core.cli.eval_video --model models/omg_seg_tiny.pth --sequences 4 --length 40 --seed 0
    python -m omg_seg_core.cli.eval_video --source gt-noisy --sequences 8 --length 60 --seed 0

Sequences come from the synthetic generator's video mode (held-out split by default: objects slide, are carried
out of view and brought back, occlude each other; the camera orbits). Each frame goes through a detector, then
the tracking half of the node's per-frame loop (`VideoSession.track`: `Tracker.update`, `recover_missed` with a
model, `TargetManager.update`); metrics come from
`omg_seg_core.eval.mot.VideoEvaluator`:
IDF1, HOTA, IDSW per 100 frames, VPQ and the persistent-target hit rate (IoU >= 0.5 in visible frames).

Sources (the JSON and the printout say which one produced the numbers):
* ``model``: `OMGSegPredictor.panoptic()` of the given checkpoint; targets are registered from a box prompt on
  the ground-truth box (even targets) or from `text()` with the object's unique referring phrase (odd ones), and
  re-found with box prompts on the cached features + frame segments;
* ``gt-noisy``: `NoisyDetector` on the ground truth (jittered masks, misses, false positives, noisy embeddings):
  measures the tracker's logic alone, NOT a model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..eval.mot import VideoEvaluator
from ..structures import mask_iou_matrix
from . import parse_overrides
from ..structures import Segments
from ..tracking import TargetManager, Tracker, TrackerConfig
from ..video import VideoSession
from ..tracking.noisy_detections import NoiseConfig, NoisyDetector

MIN_TARGET_AREA = 300  # px: a target must be clearly visible in the frame it is requested in


def _to_world_classes(seg: Segments, names: tuple[str, ...]) -> Segments:
    """Map predicted class names onto the generator's class ids (rows with unknown names are dropped)."""
    index = {n: i for i, n in enumerate(names)}
    keep = [i for i, n in enumerate(seg.class_names) if n in index]
    out = seg.select(keep)
    out.class_ids = np.array([index[n] for n in out.class_names], np.int64)
    return out


def _oracle_ids(det: Segments, gt: Segments) -> Segments:
    """det with each thing's track id set to the GT uid it overlaps with IoU >= 0.5 (Hungarian), else 0."""
    from scipy.optimize import linear_sum_assignment

    ids = np.zeros(len(det), np.int64)
    d_th, g_th = np.flatnonzero(det.is_thing), np.flatnonzero(gt.is_thing)
    if d_th.size and g_th.size:
        iou = mask_iou_matrix(gt.masks[g_th], det.masks[d_th])
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols):
            if iou[r, c] >= 0.5:
                ids[d_th[c]] = gt.track_ids[g_th[r]]
    return replace(det, track_ids=ids)


def _pick_targets(gt: Segments, frame_things: list, k: int, rng: np.random.Generator) -> list:
    big = [s for s in frame_things if s.area >= MIN_TARGET_AREA]
    order = rng.permutation(len(big))[:k]
    return [big[i] for i in order]


def _register(session: VideoSession, info, j: int, gt: Segments, det: Segments, stamp: float) -> Optional[int]:
    """Register GT object `info` as a target the way a user would (on the session's latest frame); returns the
    target id or None."""
    gmask = gt.masks[list(gt.track_ids).index(info.track_id)]
    predictor = session.predictor
    if predictor is None:  # gt-noisy: the simulated detection of that object, as a text() result
        if len(det) == 0:
            return None
        iou = mask_iou_matrix(gmask[None], det.masks)[0]
        i = int(np.argmax(iou))
        if iou[i] < 0.5:
            return None
        res, label = replace(det[i], task="text"), info.phrase_canonical
    elif j % 2 == 1 and info.phrase_unique:
        res, label = predictor.text(info.phrase_canonical), info.phrase_canonical
    else:
        x, y, w, h = info.bbox
        res = predictor.prompt(boxes=np.array([[x, y, x + w, y + h]], np.float32))
        label = info.phrase_canonical or "box prompt"
    if len(res) == 0:
        return None
    ids = session.follow(res[0], label, stamp)  # the best answer; an empty mask cannot be followed
    return ids[0] if ids else None


def evaluate(detect: Callable[[Any], Segments], predictor: Any, sequences: int, length: int, seed: int,
             split: str, size: tuple[int, int], n_targets: int, fps: float, tracker_cfg: TrackerConfig,
             windows: tuple[int, ...], on_reset: Optional[Callable[[], None]] = None,
             log: Callable[[str], None] = print, generator: Any = None) -> dict:
    """Run detector + tracker + targets over generated sequences; returns the metrics dict.

    `generator`: anything with `.sequence(index, length)` yielding `SynthFrame`s (e.g. frames rendered once and
    replayed by benchmarks/tune_tracker.py); None = a `SynthGenerator(split, seed, size)` made and closed here.
    """
    from ..data.synth import SynthGenerator, world

    names = world.CLASS_NAMES
    is_thing = [i < len(world.THING_CLASSES) for i in range(len(names))]
    ev = VideoEvaluator(names, is_thing, windows=windows)
    # Same detections with ids copied from the ground truth: the best any tracker could do with them.
    oracle = VideoEvaluator(names, is_thing, windows=windows)
    own = generator is None
    gen = SynthGenerator(size[1], size[0], split=split, seed=seed) if own else generator
    rng = np.random.default_rng(seed)
    per_seq, times = [], {"detect": [], "tracker": [], "targets": []}
    all_reg_iou: list[float] = []
    good = [0, 0]  # visible frames / hits of targets whose request itself was right (IoU >= 0.5)
    try:
        for s in range(sequences):
            session = VideoSession(predictor, Tracker(tracker_cfg), TargetManager(tracker_cfg))
            if on_reset:
                on_reset()
            seq_ev = VideoEvaluator(names, is_thing, windows=(1,))
            ev.start_sequence()
            seq_ev.start_sequence()
            oracle.start_sequence()
            registered: dict[int, int] = {}  # target id -> GT uid
            reg_iou: dict[int, float] = {}   # target id -> IoU of the registered mask with the GT mask
            for t, frame in enumerate(gen.sequence(s, length)):
                gt = frame.to_segments()
                stamp = t / fps
                t0 = time.perf_counter()
                det = detect(frame)
                t1 = time.perf_counter()
                # the predictor (if any) still holds this frame's features: recovery and target prompts use them
                res = session.track(det, stamp, t, resegmenter=predictor)
                tracked, out = res.segments, res.targets
                times["detect"].append(t1 - t0)
                times["tracker"].append((res.timings["tracker"] + res.timings["recovery"]) / 1e3)
                if "targets" in res.timings:
                    times["targets"].append(res.timings["targets"] / 1e3)
                if t == 0:  # requests arrive on the first frame; targets are scored from the next one on
                    for j, info in enumerate(_pick_targets(gt, frame.things(), n_targets, rng)):
                        tid = _register(session, info, j, gt, det, stamp)
                        if tid is not None:
                            registered[tid] = info.track_id
                            # How good was the request itself (prompt / text result vs ground truth)?
                            reg_iou[tid] = float(mask_iou_matrix(
                                gt.masks[list(gt.track_ids).index(info.track_id)][None],
                                session.targets.targets[-1].mask[None])[0, 0])
                for e in ev, seq_ev:
                    e.process(gt, tracked)
                oracle.process(gt, _oracle_ids(det, gt))
                if out is not None:
                    for row, tid in enumerate(out.track_ids):
                        uid = registered.get(int(tid))
                        if uid is None:
                            continue
                        g = gt.masks[list(gt.track_ids).index(uid)] if uid in gt.track_ids else None
                        for e in ev, seq_ev:
                            e.process_target(g, out.masks[row])
                        if reg_iou[int(tid)] >= 0.5 and g is not None and g.any():
                            good[0] += 1
                            good[1] += mask_iou_matrix(g[None], out.masks[row][None])[0, 0] >= 0.5
            all_reg_iou.extend(reg_iou.values())
            r = {**seq_ev.tracking(), **seq_ev.targets(), "targets_registered": len(registered)}
            per_seq.append({k: r[k] for k in ("IDF1", "HOTA", "IDSW", "frames", "gt_tracks", "pred_tracks",
                                               "target_visible_frames", "target_iou50_fraction",
                                               "targets_registered")})
            log(f"sequence {s}: IDF1 {r['IDF1']:.3f} HOTA {r['HOTA']:.3f} IDSW {r['IDSW']} "
                f"targets {len(registered)} hit {r['target_iou50_fraction']:.3f}")
    finally:
        if own:
            gen.close()
    metrics = ev.evaluate()
    orc = oracle.evaluate()
    metrics["oracle_ids"] = {k: orc[k] for k in ("IDF1", "HOTA", "DetA", "AssA", "MOTA", "vpq", "IDSW")}
    metrics["per_sequence"] = per_seq
    metrics["target_request_ious"] = [round(v, 3) for v in all_reg_iou]
    metrics["target_iou50_fraction_good_requests"] = good[1] / good[0] if good[0] else float("nan")
    metrics["target_visible_frames_good_requests"] = good[0]
    metrics["ms_per_frame"] = {k: 1e3 * float(np.median(v)) if v else float("nan") for k, v in times.items()}
    return metrics


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="omg-seg-eval-video", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=("model", "gt-noisy"), default=None,
                    help="detector: the model (needs --model) or noisy ground truth (tracker logic only)")
    ap.add_argument("--model", default=None, help="checkpoint path or model name for --source model")
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--targets", type=int, default=2, help="persistent targets registered per sequence")
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate used for the stamps")
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 5, 10, 15], help="VPQ window sizes (frames)")
    ap.add_argument("--tracker", nargs="*", default=[], metavar="KEY=VALUE", help="TrackerConfig overrides")
    ap.add_argument("--thresholds", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TaskThresholds overrides for --source model (default: the checkpoint's, e.g. iou_thr=0.8)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = ap.parse_args(argv)
    source = args.source or ("model" if args.model else "gt-noisy")
    if source == "model" and not args.model:
        ap.error("--source model needs --model")
    if args.sequences < 1 or args.length < 2:
        ap.error("need --sequences >= 1 and --length >= 2")
    tracker_cfg = TrackerConfig().updated(**parse_overrides(args.tracker, "--tracker"))
    from ..data.synth import world

    predictor, noise = None, None
    if source == "model":
        from ..predict import build_predictor

        predictor = build_predictor(args.model)
        predictor.set_thresholds(**parse_overrides(args.thresholds, "--thresholds"))

        def detect(frame) -> Segments:
            predictor.set_image(frame.rgb)
            return _to_world_classes(predictor.panoptic(), world.CLASS_NAMES)
        reset = None
    else:
        noise = NoiseConfig()
        sim = NoisyDetector(list(world.CLASS_NAMES), len(world.THING_CLASSES), noise, seed=args.seed)

        def detect(frame) -> Segments:
            return sim(frame.to_segments())
        reset = sim.reset
    metrics = evaluate(detect, predictor, args.sequences, args.length, args.seed, args.split,
                       (args.height, args.width), args.targets, args.fps, tracker_cfg, tuple(args.windows),
                       on_reset=reset)
    label = "MODEL " + str(args.model) if source == "model" else "GT-NOISY (simulated detector, tracker logic only)"
    print(f"\nsource: {label}")
    print(f"{'IDF1':>6} {'HOTA':>6} {'IDSW/100f':>9} {'VPQ':>6} {'MOTA':>6} {'target IoU>=.5':>14}")
    print(f"{metrics['IDF1']:>6.3f} {metrics['HOTA']:>6.3f} {metrics['IDSW_per_100_frames']:>9.2f} "
          f"{metrics['vpq']:>6.3f} {metrics['MOTA']:>6.3f} {metrics['target_iou50_fraction']:>14.3f}")
    print(f"target requests: IoU with ground truth {metrics['target_request_ious']}; hit rate of the targets whose "
          f"request was right (IoU >= 0.5): {metrics['target_iou50_fraction_good_requests']:.3f} over "
          f"{metrics['target_visible_frames_good_requests']} visible frames")
    o = metrics["oracle_ids"]
    print(f"same detections with ground-truth ids (upper bound): IDF1 {o['IDF1']:.3f} HOTA {o['HOTA']:.3f} "
          f"VPQ {o['vpq']:.3f} MOTA {o['MOTA']:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "source": source, "model": args.model, "split": args.split, "sequences": args.sequences,
            "length": args.length, "seed": args.seed, "size": [args.height, args.width], "fps": args.fps,
            "tracker_config": tracker_cfg.to_dict(), "noise": noise.to_dict() if noise else None,
            "thresholds": dataclasses.asdict(predictor.thresholds) if predictor is not None else None,
            "command": " ".join(["python -m omg_seg_core.cli.eval_video", *(argv if argv is not None else sys.argv[1:])]),
            "metrics": metrics}, indent=2, default=float))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
