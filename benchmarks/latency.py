#!/usr/bin/env python3
"""Per-stage latency and peak memory of OMG-Seg (PyTorch backend): prints a table and writes JSON.

Stages (median over --repeats after --warmup runs, each on the same image):
  preprocess          resize + normalise + pad (numpy/cv2 -> tensor)
  backbone            model.backbone(x)
  pixel_decoder       model.pixel_decoder(feats)
  decoder             model.head(mask_features, memory) (transformer decoder + heads, last layer)
  set_image           predictor.set_image (preprocess + whole image graph)
  panoptic / instances / semantic   post-processing on cached features (class logits + fusion + upsampling)
  set_image+panoptic  the per-frame cost of the default node task
  prompt_1pt / prompt_5   prompt graph + post-processing on cached features (1 point; 3 boxes + 2 points)
  text_cached         text() on cached features, phrase embedding already cached
  text_new            text() with a phrase not seen before (includes the text tower: 14 templates)
cpu ms: median CPU time of the process (all threads) per call: less sensitive than wall time to other processes.
Memory: CPU = peak process RSS sampled every 2 ms during the stage (absolute, and above the RSS before it);
CUDA = torch.cuda.max_memory_allocated during the stage.

Examples:
  scripts/with_env.sh .venv/bin/python benchmarks/latency.py --model tiny --sizes 320 --image-size 240 320
  scripts/with_env.sh .venv/bin/python benchmarks/latency.py --model convl --sizes 512 1024 --repeats 3
Without --checkpoint, weights are random (the shipped tiny checkpoint is used when present): network timings
are representative, post-processing times depend on how many queries survive and are only indicative.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402


class PeakRSS:
    """Context manager sampling this process's RSS in a thread (CPU peak memory of a stage)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.proc = interval, psutil.Process()
        self.start = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.proc.memory_info().rss
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def measure(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median / min ms of fn() and its peak memory (MiB)."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times, cpu = [], []
    with PeakRSS() as rss:
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize(device)
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    # cpu_ms: CPU time of this process (all threads): on a shared, loaded machine it shows the work done, while
    # wall time also counts the time other processes held the cores.
    out = {"median_ms": statistics.median(times), "min_ms": min(times), "cpu_median_ms": statistics.median(cpu),
           "n": repeats}
    if cuda:
        out["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["peak_above_start_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        out["peak_mem_mib"] = rss.peak / 2**20
        out["peak_above_start_mib"] = (rss.peak - rss.start) / 2**20
    return out


def test_image(h: int, w: int) -> np.ndarray:
    """A deterministic RGB scene (background gradient + coloured boxes/discs) of size h x w."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 200 // max(w, 1)) + 30, (yy * 180 // max(h, 1)) + 40, np.full_like(xx, 90)], -1)
    img = img.astype(np.uint8)
    rng = np.random.RandomState(0)
    for _ in range(8):
        x0, y0 = rng.randint(0, w * 3 // 4), rng.randint(0, h * 3 // 4)
        img[y0:y0 + h // 6, x0:x0 + w // 6] = rng.randint(0, 255, 3)
        d = (xx - x0) ** 2 + (yy - y0) ** 2 < (min(h, w) // 12) ** 2
        img[d] = rng.randint(0, 255, 3)
    return img


def build_predictor(args: argparse.Namespace, device: str, dtype: str):
    from omg_seg_core.config import default_checkpoint_path, get_model_config
    from omg_seg_core.model.omg_seg import build_model
    from omg_seg_core.predict import build_predictor

    cfg = get_model_config(args.model)
    ckpt = args.checkpoint or (default_checkpoint_path(cfg.name) if not args.random else None)
    text_encoder = None
    if ckpt is not None:
        from omg_seg_core.model.checkpoint import load_model

        model, meta = load_model(cfg.name, weights=ckpt, backbone_weights=args.backbone_weights)
        weights = str(ckpt)
    else:
        torch.manual_seed(0)
        model, meta, weights = build_model(cfg), {}, "random"
    if cfg.text_encoder.startswith("clip_") and meta.get("text_weights") is None:
        from omg_seg_core.text.clip_text import ClipTextEncoder

        text_encoder = ClipTextEncoder()  # full-size random CLIP text tower: same cost as the real one
    vocab = args.vocabulary or meta.get("vocabulary") or "coco_panoptic"
    if text_encoder is not None:
        # A random CLIP text tower gives meaningless embeddings, and running it over 133 classes x synonyms x 14
        # templates costs minutes on a CPU: use random unit vectors of the same shape (timing is unaffected).
        from omg_seg_core.text.vocabulary import load_vocabulary

        v = load_vocabulary(vocab)
        k = max(len(s) for s in v.synonyms())
        g = torch.Generator().manual_seed(0)
        emb = torch.nn.functional.normalize(torch.randn(v.num_classes, k, cfg.class_embed_dim, generator=g), dim=-1)
        p = build_predictor(model, backend="torch", device=device, dtype=dtype, text_encoder=text_encoder,
                            vocabulary={"things": ["x"]})
        p.set_vocabulary(v, embeddings=emb)
    else:
        p = build_predictor(model, backend="torch", device=device, dtype=dtype, vocabulary=vocab)
    return p, weights


def run_config(p, size: int, image: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    from omg_seg_core.predict.preprocess import preprocess

    dev = p.device
    p.long_side = size
    model = p.backend.model
    dt = p.backend.dtype
    rows: list[dict[str, Any]] = []
    h, w = image.shape[:2]

    def add(stage: str, fn: Callable[[], Any], repeats: Optional[int] = None, warmup: Optional[int] = None) -> None:
        r = measure(fn, repeats or args.repeats, args.warmup if warmup is None else warmup, dev)
        rows.append({"stage": stage, "long_side": size, "device": str(dev), "dtype": str(dt).replace("torch.", ""),
                     "image_hw": [h, w], **r})
        print(f"  {stage:<20} {r['median_ms']:10.1f} ms  (min {r['min_ms']:.1f}, cpu {r['cpu_median_ms']:.1f}, "
              f"n={r['n']})  "
              f"peak {r['peak_mem_mib']:8.0f} MiB (+{r['peak_above_start_mib']:.0f})", flush=True)

    x, meta = preprocess(image, size, p.cfg.pad_size_divisor, dev, dt)
    print(f"[{p.cfg.name} long_side={size} input={tuple(x.shape)} {dev} {dt}]", flush=True)
    add("preprocess", lambda: preprocess(image, size, p.cfg.pad_size_divisor, dev, dt))
    with torch.inference_mode():
        feats = model.backbone(x)
        mask_features, memory = model.pixel_decoder(feats)
        with torch.inference_mode():
            add("backbone", lambda: model.backbone(x))
            add("pixel_decoder", lambda: model.pixel_decoder(feats))
            add("decoder", lambda: model.head(mask_features, memory, all_layers=False))
    add("set_image", lambda: p.set_image(image))
    p.set_image(image)

    def fresh_panoptic():
        p._cls_logits = None  # class logits are cached per image: include them, as the first task call does
        return p.panoptic()

    add("panoptic", fresh_panoptic)
    add("instances", p.instances)
    add("semantic", p.semantic, repeats=max(1, min(args.repeats, 3)), warmup=min(args.warmup, 1))
    add("set_image+panoptic", lambda: (p.set_image(image), p.panoptic()))
    cx, cy = w / 2, h / 2
    add("prompt_1pt", lambda: p.prompt(points=[[cx, cy]]))
    boxes = [[w * .1, h * .1, w * .4, h * .5], [w * .5, h * .2, w * .9, h * .6], [w * .2, h * .5, w * .7, h * .9]]
    add("prompt_5", lambda: p.prompt(points=[[w * .3, h * .3], [w * .7, h * .4]], boxes=boxes))
    p.text("red box")
    add("text_cached", lambda: p.text("red box"))
    counter = iter(range(10_000))
    add("text_new", lambda: p.text(f"object number {next(counter)}"), repeats=max(1, min(args.repeats, 3)),
        warmup=0)
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="convl", help="convl | tiny (or a full model name)")
    ap.add_argument("--checkpoint", default=None, help="weights (default: shipped checkpoint if present, else random)")
    ap.add_argument("--backbone-weights", default=None, help="open_clip ConvNeXt-L weights (convl)")
    ap.add_argument("--random", action="store_true", help="random weights even if a shipped checkpoint exists")
    ap.add_argument("--vocabulary", default=None, help="vocabulary name/path (default: checkpoint's or COCO)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="long sides to measure")
    ap.add_argument("--image-size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"),
                    help="original image size (default 480 640)")
    ap.add_argument("--device", default="auto", help="cpu | cuda | auto (= cpu, plus cuda when available)")
    ap.add_argument("--dtypes", nargs="+", default=None, help="default: float32 on CPU, float32 float16 on CUDA")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default=None, help="JSON path (default bench_results/latency_<model>.json)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    image = test_image(*args.image_size)
    rows: list[dict[str, Any]] = []
    weights = None
    for device in devices:
        for dtype in args.dtypes or (["float32"] if device == "cpu" else ["float32", "float16"]):
            p, weights = build_predictor(args, device, dtype)
            for size in args.sizes:
                rows += run_config(p, size, image, args)
            p.release()
            del p
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "cpu": platform.processor() or platform.machine(), "loadavg": os.getloadavg(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    result = {"model": args.model, "weights": weights, "image_hw": args.image_size, "repeats": args.repeats,
              "warmup": args.warmup, "env": env, "results": rows}
    out = Path(args.out or ROOT / "bench_results" / f"latency_{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\n{'stage':<20} {'long':>5} {'device':>7} {'dtype':>8} {'median ms':>10} {'cpu ms':>9} {'peak MiB':>9}")
    for r in rows:
        print(f"{r['stage']:<20} {r['long_side']:>5} {r['device']:>7} {r['dtype']:>8} {r['median_ms']:>10.1f} "
              f"{r['cpu_median_ms']:>9.1f} {r['peak_mem_mib']:>9.0f}")
    print(f"env: {env}\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
