"""Evaluation outputs: report.json, report.md and plots (per-class PQ bars, latency histogram, contact sheet of the
worst frames). Overlays use `omg_seg_core.viz.overlay` when it is available, else a plain per-segment colouring.
Plots use matplotlib's Agg backend (no display needed)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from omg_seg_core.structures import Segments


def _resize_nearest(img: np.ndarray, long_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, long_side / max(h, w))
    if s >= 1.0:
        return img
    ys = (np.arange(max(1, round(h * s))) / s).astype(int)
    xs = (np.arange(max(1, round(w * s))) / s).astype(int)
    return img[ys][:, xs]


def _palette(n: int) -> np.ndarray:
    """n distinct-ish RGB colours (golden-ratio hues), deterministic."""
    import colorsys

    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)]
                     for i in range(max(n, 1))], np.uint8)


def overlay_thumbnail(image: np.ndarray, segments: Segments, long_side: int = 256) -> np.ndarray:
    """uint8 [h, w, 3] thumbnail of `image` with `segments` drawn on it (long side <= long_side)."""
    try:
        from omg_seg_core.viz.overlay import render_overlay  # type: ignore[attr-defined]

        out = np.asarray(render_overlay(image, segments), np.uint8)
    except (ImportError, AttributeError, TypeError):
        # Plain colouring: colour by class (things additionally by instance) blended at 50 %.
        out = image.astype(np.float32).copy()
        colours = _palette(64)
        for i, m in enumerate(segments.masks):
            key = int(segments.class_ids[i]) * 7 + (int(segments.track_ids[i]) or i) * int(segments.is_thing[i])
            out[m] = 0.5 * out[m] + 0.5 * colours[key % len(colours)]
        out = out.astype(np.uint8)
    return _resize_nearest(out, long_side)


def _clean(x: Any) -> Any:
    """JSON-safe: nan/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)  # paths and anything else a report may mention


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}"


def plot_per_class_pq(per_class: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(per_class, key=lambda n: per_class[n]["pq"])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    colours = ["tab:blue" if per_class[n]["is_thing"] else "tab:orange" for n in names]
    bars = ax.barh(names, [100 * per_class[n]["pq"] for n in names], color=colours)
    ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)  # zero bars stay readable
    ax.set_xlabel("PQ (%)  — blue: things, orange: stuff")
    ax.set_xlim(0, 100)
    ax.set_title("Panoptic quality per class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_latency(samples: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    # One set of log-spaced bins for every stage: stages span 0.1 ms (tracker) to seconds (CPU network), and
    # shared bins keep the bars comparable.
    allv = np.concatenate([np.asarray(v, float) for v in samples.values() if len(v)])
    lo, hi = max(float(allv.min()), 1e-2), max(float(allv.max()), 1e-2)
    bins = np.geomspace(lo * 0.9, hi * 1.1, 40)
    for stage, xs in sorted(samples.items(), key=lambda kv: -np.median(kv[1])):
        ax.hist(np.clip(xs, lo, hi), bins=bins, histtype="step", linewidth=1.5,
                label=f"{stage}: p50 {np.percentile(xs, 50):.1f}, p95 {np.percentile(xs, 95):.1f} ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Latency per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_contact_sheet(worst: list[dict], path: Path) -> None:
    """Rows = worst frames (worst first); columns = prediction overlay, ground-truth overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(worst), 2, figsize=(7, 2.6 * len(worst)), squeeze=False)
    for row, w in zip(axes, worst):
        row[0].imshow(w["pred"])
        where = f"{w['source']} " if w.get("source") else ""
        row[0].set_title(f"{where}frame {w['index']} prediction (PQ {_pct(w['pq'])})", fontsize=8)
        row[1].imshow(w["gt"])
        row[1].set_title(f"stamp {w['stamp']} ground truth", fontsize=8)
        for a in row:
            a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out_dir: Path, results: dict, meta: dict, latency_samples: dict[str, list[float]],
                 worst: list[dict], frames: list[dict]) -> dict[str, Path]:
    """Write report.json (meta + results + per-frame records), report.md and the plots; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    pan = results.get("panoptic")
    if pan and pan["per_class"]:
        paths["per_class_pq"] = out_dir / "per_class_pq.png"
        plot_per_class_pq(pan["per_class"], paths["per_class_pq"])
    if latency_samples:
        paths["latency"] = out_dir / "latency_hist.png"
        plot_latency(latency_samples, paths["latency"])
    if worst:
        paths["worst_frames"] = out_dir / "worst_frames.png"
        plot_contact_sheet(worst, paths["worst_frames"])
    report = _clean({"meta": meta, "results": results, "plots": {k: v.name for k, v in paths.items()},
                     "frames": frames})
    paths["json"] = out_dir / "report.json"
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(paths["json"])
    paths["md"] = out_dir / "report.md"
    paths["md"].write_text(markdown(report))
    return paths


def markdown(report: dict) -> str:
    """Human summary of a report dict (the JSON written by `write_report`)."""
    m, r = report["meta"], report["results"]
    lines = ["# omg-seg-eval report", "", "## What was evaluated", ""]
    for k, v in m.items():
        lines.append(f"- **{k}**: {v}")
    lines += ["", f"- **frames evaluated**: {r['frames_evaluated']} "
                  f"(with ground truth: {r['frames_with_ground_truth']})"]
    if r["skipped"]:
        lines.append("- **frames / messages skipped**:")
        lines += [f"  - {n} × {why}" for why, n in sorted(r["skipped"].items(), key=lambda kv: -kv[1])]
    else:
        lines.append("- **skipped**: none")
    pan = r.get("panoptic")
    if pan:
        lines += ["", "## Panoptic quality (%)", "", "| | PQ | SQ | RQ | classes |", "|---|---|---|---|---|"]
        for k in ("all", "things", "stuff"):
            lines.append(f"| {k} | {_pct(pan[k]['pq'])} | {_pct(pan[k]['sq'])} | {_pct(pan[k]['rq'])} | {pan[k]['n']} |")
        lines += ["", "| class | PQ | SQ | RQ | TP | FP | FN |", "|---|---|---|---|---|---|---|"]
        for n, c in sorted(pan["per_class"].items(), key=lambda kv: kv[1]["pq"]):
            lines.append(f"| {n}{'' if c['is_thing'] else ' (stuff)'} | {_pct(c['pq'])} | {_pct(c['sq'])} | "
                         f"{_pct(c['rq'])} | {c['tp']} | {c['fp']} | {c['fn']} |")
    sem = r.get("semantic")
    if sem:
        lines += ["", "## Semantic", "", f"mIoU {_pct(sem['miou'])} %, pixel accuracy {_pct(sem['pixel_accuracy'])} % "
                  f"over {sem['num_classes_seen']} classes"]
    ap = r.get("mask_ap")
    if ap:
        lines += ["", "## Mask AP (COCO, things)", "",
                  f"AP {_pct(ap['ap'])}, AP50 {_pct(ap['ap50'])}, AP75 {_pct(ap['ap75'])} "
                  f"({ap['num_gt']} GT instances, {ap['num_pred']} predictions)"]
    pr = r.get("prompts")
    if pr:
        lines += ["", "## Prompts", "", f"mIoU {_pct(pr['miou'])} % over {pr['count']} prompts "
                  f"(point {_pct(pr['point']['miou'])} % / {pr['point']['count']}, "
                  f"box {_pct(pr['box']['miou'])} % / {pr['box']['count']})"]
    d3 = r.get("depth_3d")
    if d3:
        from .depth3d import format_depth_report

        lines += ["", "## 3D from depth (camera optical frame)", "", format_depth_report("objects", d3)]
    tr = r.get("tracking")
    if tr:
        def fmt(v: Any) -> str:
            return f"{v:.3f}" if isinstance(v, float) else ("n/a" if v is None else str(v))

        lines += ["", "## Tracking and video metrics (fractions)", "",
                  " | ".join(f"{k} {fmt(tr[k])}" for k in ("IDF1", "HOTA", "IDSW", "vpq", "stq") if k in tr), ""]
        lines += [f"- {k}: {fmt(v)}" for k, v in tr.items() if not isinstance(v, dict)]
    lat = r.get("latency_ms")
    if lat:
        lines += ["", "## Latency (ms)", "", "| stage | p50 | p95 | mean | max | n |", "|---|---|---|---|---|---|"]
        for st, s in lat.items():
            lines.append(f"| {st} | {s['p50']:.1f} | {s['p95']:.1f} | {s['mean']:.1f} | {s['max']:.1f} | {s['count']} |")
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{k}]({v})" for k, v in report["plots"].items()]
    return "\n".join(lines) + "\n"


__all__ = ["write_report", "markdown", "overlay_thumbnail", "plot_per_class_pq", "plot_latency",
           "plot_contact_sheet"]
