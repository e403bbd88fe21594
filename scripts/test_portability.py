"""Re-run the numerically sensitive tests under other CPU kernel paths and thread counts (`make test-portability`).

A float result differs in its last bits between machines (AVX-512 vs AVX2 vs ARM, another vendor's BLAS): the
suite must pass on all of them, not only on the machine that wrote it. This forces other kernel paths on THIS
machine (ATen's CPU capability, oneDNN's and MKL's instruction-set caps, 1 and 2 threads), runs the official-
parity, post-processing and quality-floor tests under each, and prints the largest difference each bound saw
(test/tolerances.py records them) next to the bound. Writes build/portability/report.json.

Usage: scripts/with_env.sh .venv/bin/python scripts/test_portability.py [--settings NAME ...] [-- pytest args]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The tests whose expectations are floats from the model: official parity, post-processing, ONNX Runtime
#: parity, quality floors of the shipped model (images, prompts, text, video).
TESTS = [
    "test/core/model/test_golden_parity.py",
    "test/core/predict/test_postprocess.py",
    "test/core/runtime/test_golden_ort.py",
    "test/core/runtime/test_ort_parity.py",
    "test/core/runtime/test_predictor_backends.py",
    "test/core/train/test_quality_floor.py",
    "test/core/tracking/test_video_floor.py",
    "test/core/tracking/test_targets_predictor.py",
]

_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
_PLAIN = {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
SETTINGS: dict[str, dict[str, str]] = {
    "native-2t": {},
    "native-1t": {"threads": "1"},
    "aten-avx2-2t": {"ATEN_CPU_CAPABILITY": "avx2"},
    "avx2-all-2t": dict(_AVX2),
    "avx2-all-1t": {**_AVX2, "threads": "1"},
    "aten-default-2t": {"ATEN_CPU_CAPABILITY": "default"},
    "sse-all-2t": dict(_PLAIN),
}


def run_setting(name: str, env_over: dict[str, str], out_dir: Path, extra: list[str]) -> dict:
    env = dict(os.environ)
    over = dict(env_over)
    threads = over.pop("threads", "2")
    env.update(over)
    env.update({"OMG_SEG_TEST_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "OMG_SEG_DIFF_REPORT": str(out_dir / f"{name}.json")})
    report = out_dir / f"{name}.json"
    report.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"[{name}] {tail} ({time.monotonic() - t0:.0f} s)", flush=True)
    if proc.returncode != 0:
        failed = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        print("\n".join(f"  {ln}" for ln in failed), flush=True)
    diffs = json.loads(report.read_text()) if report.exists() else {}
    return {"returncode": proc.returncode, "summary": tail, "env": env_over, "diffs": diffs}


def table(results: dict[str, dict]) -> str:
    names = sorted({k for r in results.values() for k in r["diffs"]})
    cols = list(results)
    lines = ["| check | bound | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for k in names:
        bound = next((r["diffs"][k]["bound"] for r in results.values() if k in r["diffs"]), float("nan"))
        cells = [f"{r['diffs'][k]['measured']:.3g}" if k in r["diffs"] else "-" for r in results.values()]
        lines.append(f"| {k} | {'-' if math.isnan(bound) else f'{bound:.3g}'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--out", default=str(ROOT / "build" / "portability"))
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {name: run_setting(name, SETTINGS[name], out_dir, extra) for name in args.settings}
    print("\nlargest difference per setting (test/tolerances.py: README §7 re-run differences x SAFETY)")
    print(table(results))
    (out_dir / "report.json").write_text(json.dumps(results, indent=1))
    bad = [n for n, r in results.items() if r["returncode"] != 0]
    print(f"\n{len(results) - len(bad)} of {len(results)} settings passed" + (f"; failed: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
