"""KEY=VALUE overrides of the evaluation CLIs (`--thresholds` of omg-seg-eval-synth, `--tracker` of eval_video)."""
import pytest

from omg_seg_core.cli import parse_overrides
from omg_seg_core.config import PACKAGE_ROOT


def test_values_are_yaml_scalars():
    got = parse_overrides(["box_prompt_margin=-1", "prompt_source=decoder", "n_init=2", "class_gating=false",
                           "iou_thr=0.75", "name=a=b"], "--x")
    assert got == {"box_prompt_margin": -1, "prompt_source": "decoder", "n_init": 2, "class_gating": False,
                   "iou_thr": 0.75, "name": "a=b"}
    for bad in ("margin", "=3"):
        with pytest.raises(SystemExit, match="--thresholds expects KEY=VALUE"):
            parse_overrides([bad], "--thresholds")


@pytest.mark.skipif(not (PACKAGE_ROOT / "models" / "omg_seg_tiny.pth").exists(), reason="no shipped checkpoint")
def test_eval_synth_rejects_unknown_thresholds_before_evaluating(capsys):
    from omg_seg_core.cli.eval_synth import main

    with pytest.raises(SystemExit) as e:
        main(["--images", "1", "--thresholds", "box_prompt_margn=0.1"])
    assert e.value.code == 2 and "box_prompt_margn" in capsys.readouterr().err
