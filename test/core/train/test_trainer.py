"""The training pipeline end to end on a tiny generated COCO-panoptic dataset: losses are finite, checkpoints
resume bit-exactly, export loads through the public loader, bad inputs give errors naming file and field."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from omg_seg_core.train.config import load_train_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.root={root / 'img'}", f"data.video_root={root / 'vid'}", "data.source=coco_panoptic",
            "data.image_size=[64,64]", "data.val_images=2", "optim.batch_size=4", "optim.iters=2",
            "optim.warmup_iters=1", "loss.num_points=64", "loss.prompts_per_image=2", "val_every=0",
            f"out_dir={out}", "threads=1", "seed=3", *extra]


def _cfg(root: Path, out: Path, *extra: str):
    return load_train_config(None, _overrides(root, out, *extra))


def _params(tr) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tr.model.state_dict().items()}


def test_train_resume_is_exact_and_export_loads(tiny_data, tmp_path):
    from omg_seg_core.model.checkpoint import load_model
    from omg_seg_core.train.trainer import Trainer

    straight = Trainer(_cfg(tiny_data, tmp_path / "a"))
    before = _params(straight)
    s0 = straight.train_step()
    s1 = straight.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in (s0["total"], s1["total"]))
    assert s0["n_matched"] > 0 and s0["track"] > 0 and s0["text"] > 0 and s0["p_mask"] > 0
    after = _params(straight)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("text_projection."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))

    first = Trainer(_cfg(tiny_data, tmp_path / "b"))
    first.train_step()
    first.save_state()
    resumed = Trainer(_cfg(tiny_data, tmp_path / "b"), resume=True)
    assert resumed.it == 1
    resumed.train_step()
    got = _params(resumed)
    for k, v in after.items():
        assert torch.equal(v, got[k]), f"resumed run differs at {k}"

    path = resumed.export(tmp_path / "tiny.pth")
    model, meta = load_model(path)
    assert meta["vocabulary"]["things"][0].startswith("box")
    assert meta["meta"]["trained_iters"] == 2 and meta["meta"]["seed"] == 3
    assert torch.allclose(model.text_projection.linear.weight, got["text_projection.linear.weight"].half().float())


def test_run_writes_log_and_checkpoint(tiny_data, tmp_path):
    from omg_seg_core.train.trainer import Trainer

    tr = Trainer(_cfg(tiny_data, tmp_path / "r", "val_every=2", "log_every=1"))
    summary = tr.run()
    assert summary["iters"] == 2 and summary["skipped_samples"] == 0
    lines = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert any("val_total" in x for x in lines) and any("total" in x for x in lines)
    st = torch.load(tmp_path / "r" / "last.pt", weights_only=False)
    assert st["iter"] == 2 and st["format"] == "omg_seg_train_state/1"


def test_cli_export_records_tuned_thresholds_the_predictor_starts_from(tiny_data, tmp_path):
    """`omg-seg-train --export-only --export P --thresholds iou_thr=0.6` stores the values in the checkpoint; the
    predictor's defaults (and None in set_thresholds) come from them; unknown names are refused before exporting."""
    from omg_seg_core.cli import train as train_cli
    from omg_seg_core.config import TaskThresholds
    from omg_seg_core.predict import build_predictor
    from omg_seg_core.train.trainer import Trainer

    tr = Trainer(_cfg(tiny_data, tmp_path / "r"))
    tr.train_step()
    tr.save_state()
    sets = ["--set", *_overrides(tiny_data, tmp_path / "r")]
    with pytest.raises(SystemExit):
        train_cli.main([*sets, "--export-only", "--export", str(tmp_path / "bad.pth"), "--thresholds", "iou=0.6"])
    assert not (tmp_path / "bad.pth").exists()
    assert train_cli.main([*sets, "--export-only", "--export", str(tmp_path / "t.pth"),
                           "--thresholds", "iou_thr=0.6"]) == 0
    p = build_predictor(tmp_path / "t.pth", long_side=64)
    official = TaskThresholds()
    assert p.default_thresholds.iou_thr == 0.6 and p.thresholds.iou_thr == 0.6
    assert p.thresholds.object_mask_thr == official.object_mask_thr  # the rest stays official
    p.set_thresholds(iou_thr=0.9, mask_threshold=0.4)
    p.set_thresholds(iou_thr=None)
    assert p.thresholds.iou_thr == 0.6 and p.thresholds.mask_threshold == 0.4
    assert build_predictor(tmp_path / "t.pth", long_side=64, thresholds=official).thresholds.iou_thr == 0.8


def test_resume_with_other_architecture_names_the_field(tiny_data, tmp_path):
    from omg_seg_core.train.trainer import Trainer

    tr = Trainer(_cfg(tiny_data, tmp_path / "x"))
    st = tr.state()
    st["model_config"] = dict(st["model_config"], embed_dim=96)
    torch.save(st, tmp_path / "x" / "last.pt")
    with pytest.raises(ValueError, match="model_config.*embed_dim"):
        Trainer(_cfg(tiny_data, tmp_path / "x"), resume=True)


def test_states_saved_with_the_old_dtype_field_resume(tiny_data, tmp_path):
    from omg_seg_core.train.trainer import Trainer

    tr = Trainer(_cfg(tiny_data, tmp_path / "d"))
    st = tr.state()
    st["model_config"] = dict(st["model_config"], dtype="float32")  # written before ModelConfig.dtype was dropped
    torch.save(st, tmp_path / "d" / "last.pt")
    assert Trainer(_cfg(tiny_data, tmp_path / "d"), resume=True).it == 0


def test_corrupt_and_unknown_class_datasets_name_the_file(tiny_data, tmp_path):
    from omg_seg_core.train.sources import CocoPanopticSource

    bad = tmp_path / "bad"
    shutil.copytree(tiny_data / "img", bad)
    (bad / "annotations.json").write_text("{not json")
    with pytest.raises(Exception, match="annotations.json"):
        CocoPanopticSource(_cfg(tiny_data, tmp_path / "o", f"data.root={bad}").data)

    unk = tmp_path / "unk"
    shutil.copytree(tiny_data / "img", unk)
    ann = json.loads((unk / "annotations.json").read_text())
    ann["categories"][0]["name"] = "teapot"
    (unk / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(ValueError, match=r"annotations.json.*'teapot' is not in the vocabulary"):
        CocoPanopticSource(_cfg(tiny_data, tmp_path / "o", f"data.root={unk}",
                                "data.vocabulary=robot_workspace").data)

    gone = tmp_path / "gone"
    shutil.copytree(tiny_data / "img", gone)
    victim = sorted((gone / "panoptic").iterdir())[0]
    victim.unlink()
    src = CocoPanopticSource(_cfg(tiny_data, tmp_path / "o", f"data.root={gone}", "data.skip_bad=true").data)
    assert src.skipped == 1  # counted, never silent
    with pytest.raises(FileNotFoundError, match=victim.name):
        CocoPanopticSource(_cfg(tiny_data, tmp_path / "o", f"data.root={gone}").data).sample(0)


def test_config_errors_name_file_and_key(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("optim:\n  lr: 1.0e-3\n  lrr: 2\n")
    with pytest.raises(ValueError, match=r"t.yaml.optim: unknown key 'lrr'"):
        load_train_config(p)
    p.write_text("optim:\n  lr: fast\n")
    with pytest.raises(ValueError, match=r"t.yaml.optim.lr: expected a number"):
        load_train_config(p)
    with pytest.raises(FileNotFoundError):
        load_train_config(tmp_path / "missing.yaml")


def test_attribute_negatives_enter_the_text_loss(tiny_data, tmp_path):
    """Same seed and batch: with colour-swapped negatives the referring loss is larger (more columns to beat)."""
    from omg_seg_core.data.synth import world
    from omg_seg_core.train.trainer import Trainer

    plain = Trainer(_cfg(tiny_data, tmp_path / "p")).train_step()
    colours = "[" + ",".join(world.COLOUR_NAMES) + "]"
    hard = Trainer(_cfg(tiny_data, tmp_path / "h", f"loss.text_negative_words=[{colours},[small,large]]")).train_step()
    assert torch.isfinite(torch.tensor(hard["total"]))
    assert hard["text"] > plain["text"]


def test_lighter_model_from_a_checkpoint_with_distillation(tiny_data, tmp_path):
    """`model_changes` builds a lighter model keeping every tensor it still has; `loss.distill` adds a term that
    pulls its pixel-decoder outputs toward the frozen init_checkpoint model's; the export loads as the lighter
    model and a resumed run accepts its own changed config."""
    from omg_seg_core.model.checkpoint import load_model
    from omg_seg_core.train.trainer import Trainer

    base = Trainer(_cfg(tiny_data, tmp_path / "base"))
    base.train_step()
    init = base.export(tmp_path / "init.pth", half=False)
    teacher_sd = load_model(init)[0].state_dict()
    extra = (f"init_checkpoint={init}", "model_changes={num_encoder_layers: 1}", "loss.distill=5")
    tr = Trainer(_cfg(tiny_data, tmp_path / "light", *extra))
    assert tr.model.cfg.num_encoder_layers == 1 and len(tr.model.pixel_decoder.encoder.layers) == 1
    sd = tr.model.state_dict()
    assert not any(k.startswith("pixel_decoder.encoder.layers.1.") for k in sd)
    for k, v in sd.items():  # every kept tensor is the init checkpoint's
        assert torch.equal(v, teacher_sd[k]), k
    s = tr.train_step()
    assert s["distill"] > 0 and torch.isfinite(torch.tensor(s["total"]))
    for k, v in tr.loss.teacher.state_dict().items():  # the teacher stays frozen and unchanged
        assert torch.equal(v, teacher_sd[k]), k
    assert not any(p.requires_grad for p in tr.loss.teacher.parameters())
    tr.save_state()
    assert Trainer(_cfg(tiny_data, tmp_path / "light", *extra), resume=True).it == 1
    model, _ = load_model(tr.export(tmp_path / "light.pth"))
    assert model.cfg.num_encoder_layers == 1 and len(model.pixel_decoder.encoder.layers) == 1


def test_fewer_encoder_levels_from_a_checkpoint(tiny_data, tmp_path):
    """`model_changes: {num_encoder_levels: 2}` keeps the init's tensors where the cut model still has them: the
    stride-8 input projection becomes that map's FPN lateral, the stride-4 FPN step moves to index 1 (the generic
    name-and-shape rule alone would put the stride-4 output conv at stride 8); one distilled step runs."""
    from omg_seg_core.model.checkpoint import load_model
    from omg_seg_core.train.trainer import Trainer

    init = Trainer(_cfg(tiny_data, tmp_path / "base")).export(tmp_path / "init.pth", half=False)
    old = load_model(init)[0].state_dict()
    tr = Trainer(_cfg(tiny_data, tmp_path / "lvl2", f"init_checkpoint={init}", "model_changes={num_encoder_levels: 2}",
                      "loss.distill=5"))
    pd, sd = "pixel_decoder.", tr.model.state_dict()
    assert tr.model.cfg.num_encoder_levels == 2 and len(tr.model.pixel_decoder.input_convs) == 2
    assert torch.equal(sd[pd + "lateral_convs.0.conv.weight"], old[pd + "input_convs.2.conv.weight"])
    for name in ("lateral_convs.1.conv.weight", "output_convs.1.conv.weight", "output_convs.1.gn.weight"):
        assert torch.equal(sd[pd + name], old[pd + name.replace(".1.", ".0.")]), name
    assert not torch.equal(sd[pd + "output_convs.0.conv.weight"], old[pd + "output_convs.0.conv.weight"])
    s = tr.train_step()
    assert s["distill"] > 0 and torch.isfinite(torch.tensor(s["total"]))


def _four_point_init(root: Path, tmp_path: Path) -> Path:
    """An exported fp32 omg_seg_tiny with 4 sampling points (TINY has 2 since stage 11-2p): the model a cut starts
    from. Its offsets and attention weights are freshly initialised (more points than the init: new shapes)."""
    from omg_seg_core.train.trainer import Trainer

    two = Trainer(_cfg(root, tmp_path / "base2")).export(tmp_path / "base2.pth", half=False)
    return Trainer(_cfg(root, tmp_path / "base4", f"init_checkpoint={two}", "model_changes={encoder_num_points: 4}")
                   ).export(tmp_path / "init4.pth", half=False)


def test_fewer_encoder_points_from_a_checkpoint(tiny_data, tmp_path):
    """`model_changes: {encoder_num_points: 2}` keeps the init's first two points of every head and level (offsets
    and attention weights) instead of re-initialising those layers (their shapes changed)."""
    from omg_seg_core.model.checkpoint import load_model
    from omg_seg_core.train.trainer import Trainer

    init = _four_point_init(tiny_data, tmp_path)
    old = load_model(init)[0]
    assert old.cfg.encoder_num_points == 4
    tr = Trainer(_cfg(tiny_data, tmp_path / "pts2", f"init_checkpoint={init}", "model_changes={encoder_num_points: 2}"))
    heads, levels = old.cfg.num_heads, old.cfg.num_encoder_levels
    for a, b in zip(old.pixel_decoder.encoder.layers, tr.model.pixel_decoder.encoder.layers):
        for name, per_point in (("sampling_offsets", 2), ("attention_weights", 1)):
            for t in ("weight", "bias"):
                was = getattr(getattr(a.self_attn, name), t).detach()
                kept = was.reshape(heads, levels, 4, per_point, -1)[:, :, :2].reshape(getattr(getattr(
                    b.self_attn, name), t).shape)
                assert torch.equal(getattr(getattr(b.self_attn, name), t).detach(), kept), (name, t)


def test_distill_term_moves_the_student_toward_the_teacher(tiny_data, tmp_path):
    from omg_seg_core.train.trainer import Trainer

    base = Trainer(_cfg(tiny_data, tmp_path / "base"))
    init = base.export(tmp_path / "init.pth", half=False)
    tr = Trainer(_cfg(tiny_data, tmp_path / "s", f"init_checkpoint={init}", "model_changes={num_encoder_layers: 1}",
                      "loss.distill=1"))
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    tr.model.eval()
    opt = torch.optim.Adam(tr.model.pixel_decoder.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        mask_features, memory = tr.model.pixel_decoder(tr.model.backbone(images))
        return tr.loss.distill_loss(images, mask_features, memory)

    first = loss()
    for _ in range(5):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert first > 0 and loss() < 0.9 * first


def test_distill_without_model_changes_keeps_its_own_frozen_copy(tiny_data, tmp_path):
    from omg_seg_core.model.checkpoint import load_model
    from omg_seg_core.train.trainer import Trainer

    init = Trainer(_cfg(tiny_data, tmp_path / "base")).export(tmp_path / "init.pth", half=False)
    tr = Trainer(_cfg(tiny_data, tmp_path / "s", f"init_checkpoint={init}", "loss.distill=1"))
    assert tr.loss.teacher is not tr.model
    tr.train_step()
    for k, v in load_model(init)[0].state_dict().items():  # the student trained, its teacher did not
        assert torch.equal(tr.loss.teacher.state_dict()[k], v), k
    assert any(not torch.equal(tr.model.state_dict()[k], tr.loss.teacher.state_dict()[k])
               for k in tr.model.state_dict() if k.startswith("head."))


def test_teacher_checkpoint_is_the_distill_teacher_instead_of_the_init_model(tiny_data, tmp_path):
    """A later stage of a cut model starts from its own weights (2 points) and distils toward the model it was cut
    from (4 points): the teacher holds the teacher_checkpoint's tensors, the student the init_checkpoint's."""
    from omg_seg_core.model.checkpoint import load_model
    from omg_seg_core.train.trainer import Trainer

    big = _four_point_init(tiny_data, tmp_path)
    cut = Trainer(_cfg(tiny_data, tmp_path / "cut", f"init_checkpoint={big}", "model_changes={encoder_num_points: 2}")
                  ).export(tmp_path / "cut.pth", half=False)
    tr = Trainer(_cfg(tiny_data, tmp_path / "s2", f"init_checkpoint={cut}", f"teacher_checkpoint={big}",
                      "loss.distill=1"))
    assert tr.model.cfg.encoder_num_points == 2 and tr.loss.teacher.cfg.encoder_num_points == 4
    for k, v in load_model(big)[0].state_dict().items():
        assert torch.equal(tr.loss.teacher.state_dict()[k], v), k
    for k, v in load_model(cut)[0].state_dict().items():
        assert torch.equal(tr.model.state_dict()[k], v), k
    assert "distill" in tr.train_step()
    wide = Trainer(_cfg(tiny_data, tmp_path / "wide", f"init_checkpoint={cut}", "model_changes={embed_dim: 32}")
                   ).export(tmp_path / "wide.pth", half=False)
    with pytest.raises(ValueError, match="embed_dim 32"):
        Trainer(_cfg(tiny_data, tmp_path / "s3", f"init_checkpoint={cut}", f"teacher_checkpoint={wide}",
                     "loss.distill=1"))


@pytest.mark.parametrize("extra, match", [
    (("model_changes={num_encoder_layers: 1}",), "model_changes needs init_checkpoint"),
    (("init_checkpoint=x.pth", "teacher_checkpoint=y.pth"), "set loss.distill > 0"),
    (("loss.distill=1",), "loss.distill needs init_checkpoint"),
    (("init_checkpoint=x.pth", "model_changes={name: other}"), "'name' cannot change"),
    (("init_checkpoint=x.pth", "loss.distill=-1"), "loss.distill must be >= 0"),
])
def test_lighter_model_settings_are_checked(tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        load_train_config(None, [f"out_dir={tmp_path}", *extra])


def test_model_changes_with_an_unknown_field_names_it(tiny_data, tmp_path):
    from omg_seg_core.train.trainer import Trainer

    init = Trainer(_cfg(tiny_data, tmp_path / "base")).export(tmp_path / "init.pth")
    with pytest.raises(ValueError, match="unknown field.*encoder_layerz"):
        Trainer(_cfg(tiny_data, tmp_path / "s", f"init_checkpoint={init}", "model_changes={encoder_layerz: 1}"))


def test_scale_range_sets_the_crops_scale_and_validation_takes_its_geometric_mean(tiny_data, tmp_path):
    """96x64 scenes, 96x64 crops: a scene scaled by f fills f*96 x f*64 of its crop (valid_hw), the rest is padding."""
    from omg_seg_core.train.sources import BatchSampler, make_source

    cfg = _cfg(tiny_data, tmp_path, "data.image_size=[96,64]", "data.scale_range=[0.25,1.0]")
    sampler = BatchSampler(make_source(cfg.data), cfg.data, 4, seed=0)
    crops, _ = sampler.batch(0)
    sizes = [s.extra["valid_hw"] for s in crops]
    assert all(16 <= h <= 64 and 24 <= w <= 96 for h, w in sizes) and min(sizes) < (60, 90), sizes
    assert {s.extra["valid_hw"] for s in sampler.val_batches()[0]} == {(32, 48)}  # sqrt(0.25 * 1.0) = 0.5
    default = _cfg(tiny_data, tmp_path)
    assert default.data.scale_range == (0.8, 1.25)
    assert {s.extra["valid_hw"] for s in BatchSampler(make_source(default.data), default.data, 4).val_batches()[0]
            } == {(64, 64)}  # scale 1.0: the 64x64 crop is all scene


@pytest.mark.parametrize("value", ["[1.0]", "[1.2,0.8]", "[0,1]", "fast"])
def test_bad_scale_range_is_refused(tmp_path, value):
    with pytest.raises(ValueError, match="data.scale_range must be"):
        load_train_config(None, [f"out_dir={tmp_path}", f"data.scale_range={value}"])
