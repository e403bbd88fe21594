"""`omg-seg-eval`: evaluate the OMG-Seg model (or a recorded node run) on a ROS 2 bag or a COCO-panoptic folder.
No ROS install needed (rosbags). Full guide: docs/evaluation.md.

    omg-seg-eval BAG --out eval_out [--params config/perception.yaml] [--model tiny --weights W.pth]
                 [--video] [--result-bag eval_out/result_bag] [--stamp-tolerance-ms 5]
    omg-seg-eval path/to/panoptic_val.json --out eval_out          # COCO-panoptic dataset folder
    omg-seg-eval BAG --predictions-topic /omg_seg/output/segments --vocabulary robot_workspace  # recorded run

Writes OUT/report.json, OUT/report.md, plots, and OUT/state.pkl (the resume point: a re-run with the same inputs
continues after the last checkpoint, or only rewrites the report when the run had finished; --restart starts over).
Exit status: 0 = evaluated, 2 = nothing could be evaluated (bad input; the message and report say why).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from omg_seg_core.eval.classmap import ClassMap
from omg_seg_core.eval.report import overlay_thumbnail, write_report
from omg_seg_core.eval.coco_source import coco_frames
from omg_seg_core.eval.resume import Run, load_state, save_state
from omg_seg_core.eval.runner import Evaluation, SourceFrame, segments_from_gt
from omg_seg_core.eval.stq import track_id_map
from omg_seg_core.structures import Segments
from omg_seg_ros.bag.io import BagError, BagWriter, open_reader
from omg_seg_ros.bag.source import bag_frames
from omg_seg_ros.msgs import MessageCodec


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="omg-seg-eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="bag folder / .mcap / .db3, or a COCO-panoptic annotations .json")
    ap.add_argument("--out", type=Path, default=Path("eval_out"))
    m = ap.add_argument_group("model (as in the node's YAML; flags override --params)")
    m.add_argument("--params", type=Path, help="node parameter YAML (ros__parameters of the first node)")
    m.add_argument("--model"), m.add_argument("--weights"), m.add_argument("--backend"), m.add_argument("--device")
    m.add_argument("--vocabulary", help="vocabulary YAML or name (default: the checkpoint's)")
    m.add_argument("--allow-random-weights", action="store_true",
                   help="run an UNTRAINED model when no checkpoint exists (plumbing tests; numbers meaningless)")
    m.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any node parameter, e.g. --set object_mask_thr=0.3 --set tracking.enabled=false")
    b = ap.add_argument_group("bag topics")
    b.add_argument("--image-topic"), b.add_argument("--gt-ns", help="ground-truth namespace (<ns>/gt/...)")
    b.add_argument("--predictions-topic", help="evaluate recorded omg_seg_msgs/SegmentArray instead of the model")
    b.add_argument("--depth-topic", help="registered depth image (default: <image ns>/depth/image_raw, ...)")
    b.add_argument("--camera-info-topic", help="the colour camera's CameraInfo (default: <image ns>/camera_info)")
    b.add_argument("--stamp-tolerance-ms", type=float, default=0.0, help="GT/image stamp join tolerance")
    b.add_argument("--window", type=int, default=16, help="stamps held while joining topics (memory bound)")
    r = ap.add_argument_group("run")
    r.add_argument("--video", action="store_true", help="track across frames in bag order; IDF1/HOTA/VPQ")
    r.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    r.add_argument("--no-prompts", action="store_true", help="ignore recorded prompts")
    r.add_argument("--result-bag", type=Path, help="write the node's output topics here (replayable in RViz)")
    r.add_argument("--result-format", choices=["mcap", "sqlite3"], default="mcap")
    r.add_argument("--restart", action="store_true", help="ignore OUT/state.pkl and start from the first frame")
    r.add_argument("--checkpoint-every", type=int, default=25, help="frames between resume checkpoints")
    r.add_argument("--worst-k", type=int, default=6, help="frames on the contact sheet")
    return ap.parse_args(argv)


def node_values(a: argparse.Namespace) -> dict[str, Any]:
    """Node parameter values: --params YAML (flattened with dots), then the explicit flags."""
    import yaml

    values: dict[str, Any] = {}
    if a.params:
        doc = yaml.safe_load(a.params.read_text()) or {}
        node = next((v for v in doc.values() if isinstance(v, dict) and "ros__parameters" in v), None)
        params = node["ros__parameters"] if node else doc

        def flat(d: dict, prefix: str = "") -> None:
            for k, v in d.items():
                flat(v, f"{prefix}{k}.") if isinstance(v, dict) else values.__setitem__(prefix + k, v)
        flat(params)
    for key, val in (("model", a.model), ("weights", a.weights), ("backend", a.backend), ("device", a.device),
                     ("vocabulary_file", a.vocabulary)):
        if val:
            values[key] = val
    if a.allow_random_weights:
        values["allow_random_weights"] = True
    for kv in a.set:
        if "=" not in kv:
            raise SystemExit(f"error: --set expects NAME=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        values[k] = yaml.safe_load(v)
    values["tracking.enabled"] = bool(a.video) and values.get("tracking.enabled", True)
    return values


def fingerprint(a: argparse.Namespace, values: dict) -> str:
    """Identity of a run for resuming: the input files (size + mtime) and every option that changes results."""
    from omg_seg_core.config import default_checkpoint_path, get_model_config

    files = sorted(p for p in ([a.input] if a.input.is_file() else a.input.rglob("*")) if p.is_file())[:1000]
    try:  # the weights file too: a new checkpoint at the same path must not continue an old run
        w = values.get("weights") or default_checkpoint_path(get_model_config(values.get("model", "tiny")).name)
    except KeyError:
        w = None
    if w and Path(w).is_file() and not a.predictions_topic:
        files.append(Path(w))
    elif not a.predictions_topic:  # an untrained model has new random weights on every start: never resume it
        values = {**values, "untrained_model_start": time.time_ns()}
    stat = [(str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    opts = {k: getattr(a, k) for k in ("image_topic", "gt_ns", "predictions_topic", "stamp_tolerance_ms", "video",
                                        "no_prompts", "depth_topic", "camera_info_topic")}
    blob = json.dumps([stat, opts, values], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def weights_used(values: dict) -> str:
    """The checkpoint the run used, in words for the report (an untrained model is said so plainly)."""
    from omg_seg_core.config import default_checkpoint_path, get_model_config

    if values.get("weights"):
        return str(values["weights"])
    try:
        shipped = default_checkpoint_path(get_model_config(values.get("model", "omg_seg_tiny")).name)
    except KeyError:
        shipped = None
    return str(shipped) if shipped else "NONE: untrained model with random weights (--allow-random-weights)"


def model_meta(a: argparse.Namespace, values: dict) -> dict[str, Any]:
    """What produced the predictions, for the report's meta: model, weights, vocabulary, backend, device."""
    meta = {"model": values.get("model", "omg_seg_tiny"), "weights": weights_used(values),
            "vocabulary": values.get("vocabulary_file") or "(checkpoint's)",
            "backend": values.get("backend", "torch"), "device": values.get("device", "cpu")}
    if a.predictions_topic:
        meta["model"] = f"recorded predictions on {a.predictions_topic}"
    return meta


class SetupError(RuntimeError):
    """The model or vocabulary cannot be set up from the options (message says which option to fix)."""


class Context:
    """Per-run objects that are rebuilt on every start: the node's VideoSession (model + tracker, as the node's
    parameters build it), class map, result bag writer."""

    def __init__(self, a: argparse.Namespace, values: dict) -> None:
        self.a, self.values = a, values
        self.predictor = self.session = None
        if a.predictions_topic is None:
            from omg_seg_ros.loader import ModelLoadError, build_session

            try:
                self.session = build_session(values, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
            except ModelLoadError as e:
                raise SetupError(str(e)) from None
            self.predictor = self.session.predictor
            vocab = self.predictor.vocabulary
        else:
            from omg_seg_core.text.vocabulary import load_vocabulary

            if not values.get("vocabulary_file"):  # recorded segments keep their recorded track ids
                raise SetupError("--predictions-topic needs --vocabulary (the node's class list)")
            vocab = load_vocabulary(values["vocabulary_file"])
        self.classmap = ClassMap(list(vocab.names), vocab.num_things)
        self.writer: Optional[BagWriter] = None


def model_outputs(ctx: Context, run: Run, f: SourceFrame) -> tuple[dict, dict[str, float]]:
    """Predictions for one frame: {'panoptic', 'instances', 'semantic', 'prompt_masks'} + timings (ms)."""
    p, t = ctx.predictor, {}
    out: dict[str, Any] = {}
    stamp = f.stamp / 1e9
    if f.recorded is not None:
        out = {"panoptic": f.recorded, "instances": f.recorded, "semantic": f.recorded}
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        # the node's per-frame work: model, panoptic, tracking (and 3D when the bag has depth)
        frame = ctx.session.step(f.rgb, stamp, f.index, depth=f.depth)
        out["panoptic"] = frame.segments
        ft = frame.timings
        t.update(preprocess=ft["preprocess"], image_graph=ft["image_graph"], panoptic=ft["task"])
        if "depth" in ft:
            t["depth_3d"] = ft["depth"]
        if run.tracker is not None:
            t["tracker"] = ft["tracker"] + ft["recovery"]
        for task in ("instances", "semantic"):
            t1 = time.perf_counter()
            out[task] = getattr(p, task)()
            t[task] = (time.perf_counter() - t1) * 1e3
        if f.gt is not None and f.gt.prompts and not ctx.a.no_prompts:
            pts = np.array([b[:2] for k, b, _ in f.gt.prompts if k == "point"], np.float32).reshape(-1, 2)
            bxs = np.array([b for k, b, _ in f.gt.prompts if k == "box"], np.float32).reshape(-1, 4)
            t1 = time.perf_counter()
            try:
                seg = p.prompt(points=pts if len(pts) else None, boxes=bxs if len(bxs) else None)
            except ValueError as e:  # e.g. a recorded prompt outside the image: count it, keep the frame
                run.ev.skip("recorded prompts rejected by the predictor (prompt mIoU skipped for the frame)")
                run.examples.setdefault("recorded prompts rejected by the predictor (prompt mIoU skipped for the "
                                        "frame)", f"frame {f.index}: {e}")
            else:
                t["prompt"] = (time.perf_counter() - t1) * 1e3
                # predictor order: points first, then boxes -> back to the recorded order
                order, ip, ib = [], 0, len(pts)
                for k, _, _ in f.gt.prompts:
                    order.append(ip if k == "point" else ib)
                    ip, ib = ip + (k == "point"), ib + (k == "box")
                out["prompt_masks"] = seg.masks[order]
        t["total"] = (time.perf_counter() - t0) * 1e3
        # CPU time of this process over the same work: on a shared machine wall time also measures other jobs.
        t["total_cpu"] = (time.process_time() - c0) * 1e3
    if "image_graph" in t:  # what the node spends per frame on its default task (one task per frame)
        t["node_frame"] = t["preprocess"] + t["image_graph"] + t["panoptic"] + t.get("tracker", 0.0)
    return out, t


def write_result(ctx: Context, f: SourceFrame, pan: Segments, sem: Segments, names: list[str]) -> None:
    """The node's output topics for one frame (see omg_seg_ros params: ~/output/*), plus the input image."""
    w, ns, codec = ctx.writer, "/omg_seg/output", MessageCodec.bags()
    header = codec.header(f.stamp, "camera")
    if f.index == 0 or not getattr(ctx, "_label_info_written", False):
        w.write(f"{ns}/label_info", codec.label_info_msg(names, header), f.stamp, latched=True)
        ctx._label_info_written = True
    w.write(ctx.image_topic, codec.rgb_to_image(f.rgb, header), f.stamp)
    overlay = overlay_thumbnail(f.rgb, pan, max(f.rgb.shape[:2]))
    w.write(f"{ns}/overlay", codec.rgb_to_image(overlay, header), f.stamp)
    w.write(f"{ns}/segments", codec.segments_to_msg(pan, header), f.stamp)
    w.write(f"{ns}/detections", codec.detections_msg(pan, header), f.stamp)
    w.write(f"{ns}/semantic", codec.semantic_image(sem, header), f.stamp)
    w.write(f"{ns}/instance_ids", codec.instance_image(pan, header), f.stamp)
    if pan.boxes_3d is not None:
        w.write(f"{ns}/detections_3d", codec.detections_3d_msg(pan, header), f.stamp)


def process(ctx: Context, run: Run, f: SourceFrame) -> None:
    ev = run.ev
    if f.rgb is None:
        return
    try:
        out, timings = model_outputs(ctx, run, f)
    except ValueError as e:  # the predictor validates images (size, dtype): a bad frame is counted, not fatal
        why = "image rejected by the predictor (frame skipped)"
        ev.skip(why)
        run.examples.setdefault(why, f"frame {f.index}: {e}")
        return
    gt = f.gt
    has_instances = gt is not None and gt.instance_ids is not None
    ev.process({"index": f.index, "stamp": f.stamp}, f.rgb, gt,
                 panoptic=out["panoptic"] if has_instances else None,
                 instances=out["instances"] if has_instances else None,
                 semantic=out["semantic"], prompt_masks=out.get("prompt_masks"), timings=timings)
    if run.video is not None and has_instances:
        g = segments_from_gt(gt, ev.class_names, ev.is_thing)
        g = g.select(~g.is_thing | (g.track_ids > 0))  # crowd regions have no identity to track
        run.video.process(g, out["panoptic"])
        run.stq.process(gt.semantic, gt.instance_ids, out["panoptic"].semantic_map(), track_id_map(out["panoptic"]))
    if ctx.writer is not None:
        write_result(ctx, f, out["panoptic"], out["semantic"], ev.class_names)


def start_evaluators(ctx: Context, run: Run) -> None:
    """Freeze the class list (vocabulary + GT classes seen in the first frame) and create the evaluators."""
    cm = ctx.classmap
    cm.frozen = True
    run.classes, run.unknown = (list(cm.names), list(cm.is_thing)), list(cm.unknown)
    run.ev = Evaluation(cm.names, cm.is_thing, worst_k=ctx.a.worst_k)
    if ctx.a.video:
        from omg_seg_core.eval.stq import STQEvaluator
        from omg_seg_core.eval.mot import VideoEvaluator

        run.video, run.stq = VideoEvaluator(cm.names, cm.is_thing), STQEvaluator(cm.names, cm.is_thing)
        run.video.start_sequence()
        run.stq.start_sequence()
        # pickled with the run: a resumed run continues its tracks (recorded predictions keep their own ids)
        run.tracker = ctx.session.tracker if ctx.session is not None else None


def open_source(a: argparse.Namespace, stream_skips: Counter, errors: list[str]) -> tuple[Any, int, dict, Any]:
    """(source, image count, topic meta, reader or None) for `a.input` (bag, or COCO-panoptic .json). Raises
    BagError / FileNotFoundError / ValueError when the input cannot be read at all (the reader is closed)."""
    if a.input.suffix == ".json":
        return (*coco_frames(a.input, stream_skips), None)
    reader = open_reader(a.input)
    try:
        source, total, topics_meta = bag_frames(reader, a, stream_skips, errors)
    except BaseException:
        reader.close()
        raise
    if hasattr(reader, "recovered"):  # mcap_recovery.McapRecoveryReader
        errors.append(f"bag damaged: {reader.recovered}; {total} image messages recovered")
    return source, total, topics_meta, reader


def feed(ctx: Context, run: Run, source: Any, limit: Optional[int],
         on_frame: Callable[[Run, bool], None] = lambda run, processed: None) -> None:
    """Feed the source's frames from `run.frames_done` on into `run` (creating its evaluators at the first
    frame). on_frame(run, processed) follows every frame read (processed False: done before a resume)."""
    for f in source(ctx.classmap, run.frames_done):
        if limit is not None and f.index >= limit:
            break
        if run.ev is None:  # first frame: the class list is final once the GT class map is known
            start_evaluators(ctx, run)
        if run.video is not None and f.sequence != run.sequence:  # dataset video boundary
            run.sequence = f.sequence
            run.video.start_sequence()
            run.stq.start_sequence()
            if ctx.session is not None:
                ctx.session.reset_tracks("new sequence")
        for reason, example in f.skips:
            run.ev.skip(reason)
            run.examples.setdefault(reason, example)
        processed = f.index >= run.frames_done
        if processed:
            process(ctx, run, f)
            run.frames_done = f.index + 1
        on_frame(run, processed)


def main(argv: Optional[list[str]] = None) -> int:
    from tqdm import tqdm

    a = parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    values = node_values(a)
    fp = fingerprint(a, values)
    state_path = a.out / "state.pkl"
    run = None if (a.restart or a.result_bag) else load_state(state_path, fp)
    resumed = run is not None and run.frames_done > 0
    run = run or Run(fp)
    meta: dict[str, Any] = {"input": str(a.input), "mode": "video" if a.video else "frames",
                            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if resumed:
        meta["resumed_at_frame"] = run.frames_done
        print(f"resuming after {run.frames_done} frames ({state_path}); --restart starts over", file=sys.stderr)
    errors: list[str] = []
    stream_skips: Counter = Counter()
    try:
        source, total, topics_meta, reader = open_source(a, stream_skips, errors)
    except (BagError, FileNotFoundError, ValueError) as e:
        return fail(a.out, meta, str(e))
    meta.update(topics_meta)
    try:
        ctx = Context(a, values)
    except (SetupError, FileNotFoundError) as e:
        if reader is not None:
            reader.close()
        return fail(a.out, meta, str(e))
    meta.update(model_meta(a, values))
    ctx.image_topic = meta.get("image_topic", "/camera/image_raw")
    if a.result_bag:
        import shutil

        if a.result_bag.exists() and (a.result_bag / "metadata.yaml").exists():
            shutil.rmtree(a.result_bag)  # our own earlier output: a re-run replaces it
        ctx.writer = BagWriter(a.result_bag, a.result_format).__enter__()
        meta["result_bag"] = str(a.result_bag)
    if run.classes is not None:
        ctx.classmap.restore(*run.classes)
    if run.tracker is not None:  # resumed: continue the saved tracks
        ctx.session.tracker = run.tracker
    limit = a.max_frames or None
    bar = tqdm(total=min(total, limit) if (total and limit) else (total or limit), unit="frame", desc="omg-seg-eval")

    def on_frame(run: Run, processed: bool) -> None:
        bar.update(1)
        if processed and run.frames_done % a.checkpoint_every == 0 and ctx.writer is None:
            save_state(state_path, run)

    try:
        feed(ctx, run, source, limit, on_frame)
    except KeyboardInterrupt:
        # No save here: the interrupted frame may be half-added; the last checkpoint on disk is consistent.
        done = (run.frames_done // a.checkpoint_every) * a.checkpoint_every
        print(f"\ninterrupted; re-run the same command to resume after the last checkpoint (frame {done})",
              file=sys.stderr)
        return 130
    finally:
        bar.close()
        if ctx.writer is not None:
            ctx.writer.__exit__(None, None, None)
        if reader is not None:
            reader.close()
    if run.ev is None:
        return fail(a.out, meta, "no frame could be read", stream_skips, errors)
    run.complete = not errors and limit is None
    save_state(state_path, run)
    return finish(a, run, meta, stream_skips, errors)


def results(run: Run, stream_skips: Counter) -> dict:
    """The metrics of a run (its evaluators' `evaluate()`), with the stream's skips counted in."""
    res = run.ev.evaluate()
    res["skipped"] = {**res["skipped"], **dict(stream_skips)}
    if run.video is not None:
        try:
            res["tracking"] = {**run.video.evaluate(), **run.stq.evaluate()}
        except (RuntimeError, ValueError) as e:
            res["tracking"] = {"error": str(e)}
    return res


def finish(a: argparse.Namespace, run: Run, meta: dict, stream_skips: Counter, errors: list[str],
           quiet: bool = False) -> int:
    """Write the report of a finished run to `a.out` (summary on stderr unless quiet); 0, or 2 if no frame."""
    res = results(run, stream_skips)
    meta["errors"] = errors or "none"
    meta["skip_examples"] = run.examples
    meta["classes_unknown_to_model"] = run.unknown or "none"
    nt = sum(run.ev.is_thing)
    meta["classes"] = f"{len(run.ev.class_names)} ({nt} things, {len(run.ev.class_names) - nt} stuff)"
    paths = write_report(a.out, res, meta, run.ev.latency.samples, run.ev.worst_frames(), run.ev.frames)
    if not quiet:
        summary(res, errors, paths)
    return 0 if res["frames_evaluated"] else 2


def summary(res: dict, errors: list[str], paths: dict) -> None:
    pan, sem = res.get("panoptic"), res.get("semantic")
    msg = [f"evaluated {res['frames_evaluated']} frames ({res['frames_with_ground_truth']} with ground truth)"]
    if pan:
        msg.append(f"PQ {100 * (pan['all']['pq'] or 0):.1f} (things {100 * np.nan_to_num(pan['things']['pq']):.1f}, "
                   f"stuff {100 * np.nan_to_num(pan['stuff']['pq']):.1f})")
    if sem:
        msg.append(f"mIoU {100 * np.nan_to_num(sem['miou']):.1f}")
    d3 = res.get("depth_3d")
    if d3 and d3.get("valid"):
        msg.append(f"3D centroid error median {d3['centroid_error_cm_median']:.1f} cm ({d3['valid']} objects)")
    print("; ".join(msg), file=sys.stderr)
    for why, n in sorted(res["skipped"].items(), key=lambda kv: -kv[1]):
        print(f"  skipped {n} x {why}", file=sys.stderr)
    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    print(f"report: {paths['md']}", file=sys.stderr)


def fail(out: Path, meta: dict, why: str, stream_skips: Optional[Counter] = None,
         errors: Optional[list[str]] = None) -> int:
    """Nothing evaluable: say why on stderr and in a report that states that nothing was evaluated."""
    print(f"error: {why}", file=sys.stderr)
    for reason, n in (stream_skips or {}).items():
        print(f"  skipped {n} x {reason}", file=sys.stderr)
    res = {"frames_evaluated": 0, "frames_with_ground_truth": 0, "skipped": dict(stream_skips or {}),
           "latency_ms": {}}
    write_report(out, res, {**meta, "error": why, "errors": errors or "none"}, {}, [], [])
    return 2


if __name__ == "__main__":
    sys.exit(main())
