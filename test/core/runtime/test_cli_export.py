"""omg-seg-export end to end (in-process `main`): a real export, and clear exit codes for bad input."""
from __future__ import annotations

import pytest

from omg_seg_core.cli.export import EXIT_BAD_INPUT, EXIT_NO_TRT, main
from omg_seg_core.runtime.onnx_io import OnnxBundle

BASE = ["--model", "tiny", "--random-weights", "--no-slim", "--max-prompts", "2"]


def test_export_writes_a_loadable_bundle(tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(BASE + ["--size", "64x96", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ONNX bundle:" in printed and "prompt graph ops (all in trt_supported_ops.txt): " in printed
    assert "GridSample x" in printed  # the deformable attention's sampling op is listed
    bundle = OnnxBundle.load(out)
    assert bundle.input_size == (64, 96) and bundle.max_prompts == 2
    assert set(bundle.meta["files"]) == {"image", "prompt"}


@pytest.mark.parametrize("args, message", [
    (["--size", "100x96"], "multiple of 32"),
    (["--long-side", "40"], "between 64"),
    (["--size", "64x96", "--build-only"], "--build-only needs --engine"),
    (["--size", "64x96", "--variant", "head"], "--variant head needs --out"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, args, message):
    assert main(BASE + args) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_unwritable_output_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(BASE + ["--size", "64x96", "--out", str(blocker / "bundle")]) == EXIT_BAD_INPUT
    assert "omg-seg-export: error:" in capsys.readouterr().err


def test_unknown_model_and_unparsable_size(capsys):
    assert main(["--model", "no_such_model.pth", "--size", "64x96"]) == EXIT_BAD_INPUT
    assert "neither a model name nor a checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--size", "64-96"])
    assert e.value.code == 2


def test_engine_without_tensorrt_exits_3(tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        import torch

        if torch.cuda.is_available():
            pytest.skip("TensorRT and a GPU are present: the engine would really be built")
    except Exception:  # noqa: BLE001
        pass
    code = main(BASE + ["--size", "64x96", "--out", str(tmp_path / "b"), "--engine", "--build-only"])
    assert code == EXIT_NO_TRT
    assert "cannot build TensorRT engines here" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # refused before spending time on the export
