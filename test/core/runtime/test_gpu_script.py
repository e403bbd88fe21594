"""benchmarks/gpu.py, the one script to run the first time a GPU is lent: its CPU-only parts run here (the tiny
model in three dtypes with parity against fp32, ONNX Runtime), so the GPU run does not fail on plumbing."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--cpu-dry-run", "--sections", "tiny",
                           "onnxruntime", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    tiny = res["sections"]["tiny"]["320x240"]
    assert tiny["float32"]["parity"]["mask_logits"] == 0.0  # the reference itself
    for dtype in ("float16", "bfloat16"):
        row = tiny[dtype]
        assert "error" in row or (row["image_graph"]["median_ms"] > 0 and row["parity"]["class_embed"] < 0.05), row
    ort = res["sections"]["onnxruntime"]
    assert "skipped" in ort or ort["parity"]["mask_logits"] < 0.01, ort
