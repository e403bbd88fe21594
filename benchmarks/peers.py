"""Our per-frame cost against the YOLO-seg models robot engineers would pick instead (ultralytics, the model behind
yolo_ros), in ONE run, same images, same threads, alternated rounds.

    scripts/with_env.sh .venv/bin/python benchmarks/peers.py [--threads 2] [--rounds 40] [--json F]
        [--candidates runs/omg_seg_tiny_enc1.pth ...]   # also time other checkpoints (a lighter model) per backend
    pip install -r requirements-bench.txt      # ultralytics (AGPL-3.0): benchmark-only, never a dependency

Rows (each timed once per round, rounds alternate the order of the rows):
- ours/<backend>/frame: `set_image(rgb) + panoptic()` of the shipped omg-seg-tiny (preprocessing, image graph,
  panoptic fusion, split_apart, edge refinement): what the node pays per frame before tracking;
- ours/<backend>/graph: the image graph alone (`backend.run_image` on the preprocessed tensor);
- <checkpoint stem>/<backend>/frame and /graph: the same for each `--candidates` checkpoint (a model not shipped);
- yolo11n-seg / yolov8n-seg / yolo11s-seg predict: `YOLO(<yaml>).predict(rgb, imgsz=320)` incl. letterbox, NMS
  and mask assembly, eager PyTorch, models built from ultralytics' yaml files with random weights (latency does
  not depend on weight values);
- yolo11n-seg/ort-graph: that model exported to ONNX at 256x320 (the padded size of a 320x240 frame) run by
  ONNX Runtime with the same threads: the image graph alone.
Images: generated held-out robot scenes at 320x240 (the shipped model's world). Prints medians, p90 and the ratio
to yolo11n-seg predict (frames) / yolo11n-seg ort-graph (graphs); writes JSON. Without ultralytics the YOLO rows
are skipped with a message.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omg_seg_core.predict import build_predictor  # noqa: E402
from omg_seg_core.predict.preprocess import preprocess  # noqa: E402
from omg_seg_core.runtime.allocator import tune_allocator  # noqa: E402
from omg_seg_core.train.synth_eval import heldout_frames  # noqa: E402


def ours(backend: str, threads: int, images: list[np.ndarray], checkpoint: Path | None = None,
         label: str = "ours") -> dict[str, Callable[[int], object]]:
    kw = {"threads": threads} if backend == "onnxruntime" else {}
    p = build_predictor("omg_seg_tiny", checkpoint=checkpoint, backend=backend, **kw)

    def frame(i: int) -> object:
        torch.set_num_threads(threads)
        p.set_image(images[i % len(images)])
        return p.panoptic()

    tensors = [preprocess(im, p.long_side, p.cfg.pad_size_divisor)[0] for im in images]

    def graph(i: int) -> object:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return p.backend.run_image(tensors[i % len(tensors)])

    return {f"{label}/{backend}/frame": frame, f"{label}/{backend}/graph": graph}


def yolo(threads: int, images: list[np.ndarray], out_dir: Path) -> dict[str, Callable[[int], object]]:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(out_dir / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics.utils.torch_utils as yolo_torch_utils
    from ultralytics import YOLO

    # ultralytics sets torch's threads to min(8, cores - 1) on every predict (1 on a 2-core machine): same threads
    yolo_torch_utils.NUM_THREADS = threads
    rows: dict[str, Callable[[int], object]] = {}
    for name in ("yolo11n-seg", "yolov8n-seg", "yolo11s-seg"):
        m = YOLO(f"{name}.yaml", task="segment")
        bgr = [im[:, :, ::-1].copy() for im in images]  # ultralytics takes numpy images as BGR (OpenCV)

        def predict(i: int, m=m, bgr=bgr) -> object:
            return m.predict(bgr[i % len(bgr)], imgsz=320, device="cpu", verbose=False)

        predict(0)  # builds the predictor (first call pays for it)
        rows[f"{name}/predict"] = predict
    import onnxruntime as ort

    m = YOLO("yolo11n-seg.yaml", task="segment")
    with contextlib.chdir(out_dir):  # a model built from its yaml exports to the working directory
        onnx = Path(m.export(format="onnx", imgsz=(256, 320), simplify=False, dynamic=False, verbose=False)).resolve()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as our ONNX Runtime backend
    sess = ort.InferenceSession(str(onnx), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 3, 256, 320), np.float32)
    rows["yolo11n-seg/ort-graph"] = lambda i: sess.run(None, {name: x})
    return rows


def _time_rows(rows: dict[str, Callable[[int], object]], warmup: int, rounds: int) -> dict[str, list[float]]:
    """ms of each row's call per round after `warmup` rounds; rows alternate their order every round."""
    times: dict[str, list[float]] = {k: [] for k in rows}
    names = list(rows)
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else names[::-1]  # alternate: no row always runs right after another
        for k in order:
            t0 = time.perf_counter()
            rows[k](r)
            if r >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "peers.json")
    ap.add_argument("--candidates", type=Path, nargs="*", default=[],
                    help="other omg_seg_tiny checkpoints to time beside the shipped one (rows named by file stem)")
    args = ap.parse_args(argv)
    for c in args.candidates:
        if not c.is_file():
            ap.error(f"--candidates: no such file {c}")
    tune_allocator()  # as the node does
    torch.set_num_threads(args.threads)
    images = [f.rgb for f in heldout_frames(args.images, seed=7)]
    rows: dict[str, Callable[[int], object]] = {}
    for b in args.backends:
        rows.update(ours(b, args.threads, images))
        for c in args.candidates:
            rows.update(ours(b, args.threads, images, checkpoint=c, label=c.stem))
    skipped = None
    with tempfile.TemporaryDirectory(prefix="omg_seg_peers_") as tmp:  # the YOLO export, ultralytics' settings
        try:
            rows.update(yolo(args.threads, images, Path(tmp)))
        except ImportError as e:
            skipped = f"ultralytics not installed ({e}); pip install -r requirements-bench.txt for the YOLO rows"
            print(f"skipping YOLO rows: {skipped}")
        times = _time_rows(rows, args.warmup, args.rounds)
    stats = {k: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "n": len(v)}
             for k, v in times.items()}
    ref_frame = stats.get("yolo11n-seg/predict", {}).get("median_ms")
    ref_graph = stats.get("yolo11n-seg/ort-graph", {}).get("median_ms")
    for k, s in stats.items():
        ref = ref_graph if k.endswith("graph") else ref_frame
        s["ratio_to_yolo11n"] = s["median_ms"] / ref if ref else None
    w = max(28, *(len(k) + 1 for k in stats))
    print(f"\n{'row':<{w}} {'median ms':>9} {'p90 ms':>8} {'/ yolo11n':>9}   (threads {args.threads}, "
          f"{args.rounds} rounds, 320x240)")
    for k, s in stats.items():
        ratio = f"{s['ratio_to_yolo11n']:.2f}x" if s["ratio_to_yolo11n"] else "-"
        print(f"{k:<{w}} {s['median_ms']:>9.1f} {s['p90_ms']:>8.1f} {ratio:>9}")
    out = {"threads": args.threads, "rounds": args.rounds, "size": "320x240", "machine": platform.processor() or
           platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "skipped": skipped,
           "rows": stats, "command": " ".join(["benchmarks/peers.py", *(argv if argv is not None else sys.argv[1:])])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
