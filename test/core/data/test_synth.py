"""Synthetic generator: determinism, ground-truth consistency, held-out combinations, video tracks, phrases."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy.ndimage import binary_erosion

from omg_seg_core.data.synth import world
from omg_seg_core.data.synth.generator import SynthGenerator
from omg_seg_core.data.synth.language import ThingRef, referring_phrases
from omg_seg_core.structures import SEMANTIC_IGNORE

W, H = 192, 144  # small frames keep the suite fast; the generator is resolution independent


@pytest.fixture(scope="module")
def gen():
    g = SynthGenerator(W, H, split="train", seed=7)
    yield g
    g.close()


@pytest.fixture(scope="module")
def frames(gen):
    return [gen.frame(i) for i in range(6)]


def test_vocabulary_yaml_matches_world():
    data = yaml.safe_load(world.vocabulary_path().read_text())
    things, stuff = world.vocabulary_lists()
    assert data["things"] == things and data["stuff"] == stuff
    assert [t.split(",")[0] for t in things] == list(world.THING_CLASSES)
    assert len(world.COLOUR_NAMES) >= 8 and set(world.SIZE_NAMES) == {"small", "large"}
    assert {"box", "ball", "cylinder", "cone", "ring", "bottle", "mug"} <= set(world.THING_CLASSES)


def test_same_seed_same_frame(gen, frames):
    again = gen.frame(3)  # after other frames were generated: no hidden state
    g2 = SynthGenerator(W, H, split="train", seed=7)  # its own OpenGL context
    fresh = g2.frame(3)
    g2.close()
    for f in (again, fresh):
        np.testing.assert_array_equal(f.rgb, frames[3].rgb)
        np.testing.assert_array_equal(f.panoptic, frames[3].panoptic)
        assert [s.to_dict() for s in f.segments] == [s.to_dict() for s in frames[3].segments]
    other = SynthGenerator(W, H, split="train", seed=8, renderer=gen.renderer).frame(3)
    held = SynthGenerator(W, H, split="heldout", seed=7, renderer=gen.renderer).frame(3)
    assert not np.array_equal(other.rgb, frames[3].rgb) and not np.array_equal(held.rgb, frames[3].rgb)


def test_ground_truth_consistent(frames):
    for f in frames:
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        ids = [s.id for s in f.segments]
        assert len(set(ids)) == len(ids)
        assert set(np.unique(f.panoptic)) - {0} == set(ids)
        masks = f.masks()
        assert not (masks.sum(0) > 1).any()
        stuff = {s.name for s in f.segments if not s.is_thing}
        assert "table" in stuff, "every view shows the table the objects stand on"
        assert len(f.things()) >= 1
        for s, m in zip(f.segments, masks):
            ys, xs = np.nonzero(m)
            assert s.area == m.sum() and s.area >= (10 if s.is_thing else 1)
            assert s.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert (f.semantic[m] == s.class_id).all()
            assert s.is_thing == (s.class_id < len(world.THING_CLASSES))
            if s.is_thing:
                assert s.track_id == s.id and s.shape == s.name and s.colour in world.COLOURS
                assert s.colour in s.phrase and any(w in s.phrase for w in world.SYNONYMS[s.shape])
        void = f.panoptic == 0
        assert (f.semantic[void] == SEMANTIC_IGNORE).all() and (f.semantic[~void] != SEMANTIC_IGNORE).all()
        uniq = [s.phrase_canonical for s in f.things() if s.phrase_unique]
        assert len(uniq) == len(set(uniq)), "unique phrases must single out one object"


# dominant-channel signature of chromatic colours: (channel that must be largest, channel that must be smallest)
_SIGNATURE = {"red": (0, None), "green": (1, None), "blue": (2, 0), "yellow": (None, 2), "orange": (0, 2), "purple": (2, 1)}


def test_masks_align_with_rendered_colours(gen):
    """Inside each (eroded) mask the pixels have the object's named colour: catches flipped/misaligned masks."""
    checked = 0
    for i in range(12):
        f = gen.frame(i)
        for s, m in zip(f.segments, f.masks()):
            core = binary_erosion(m, iterations=2)
            if not s.is_thing or s.colour not in _SIGNATURE or core.sum() < 20:
                continue
            mean = f.rgb[core].astype(float).mean(0)
            hi, lo = _SIGNATURE[s.colour]
            if hi is not None:
                assert mean.argmax() == hi, (i, s.phrase, mean)
            if lo is not None:
                assert mean.argmin() == lo, (i, s.phrase, mean)
            checked += 1
    assert checked >= 10


def test_held_out_combos_by_split():
    def combos(split: str, n: int = 150) -> list[set]:
        g = SynthGenerator(W, H, split=split, seed=3, renderer=_NoRender())
        return [{(o.colour, o.shape) for o in g.scene(i).objects} for i in range(n)]

    train = combos("train")
    assert not set().union(*train) & world.HELD_OUT_COMBOS
    assert len(set().union(*train)) >= 50  # everything else does occur
    held = combos("heldout")
    assert all(c & world.HELD_OUT_COMBOS for c in held)
    assert set().union(*held) - world.HELD_OUT_COMBOS, "heldout mixes in seen combinations too"
    assert all(c <= world.HELD_OUT_COMBOS for c in combos("novel", 40))
    # every held-out colour and shape is seen in training in other combinations
    seen = set().union(*train)
    for colour, shape in world.HELD_OUT_COMBOS:
        assert any(c == colour for c, _ in seen) and any(s == shape for _, s in seen)


class _NoRender:
    """Scene sampling needs no OpenGL; this stands in for the renderer where only scenes are inspected."""

    def release(self) -> None:
        pass


def test_video_tracks_persist_and_reenter(gen):
    seq = list(gen.sequence(2, 24))
    assert [f.index for f in seq] == list(range(24)) and all(f.sequence == 2 for f in seq)
    attrs: dict[int, tuple] = {}
    present: dict[int, list[int]] = {}
    for t, f in enumerate(seq):
        for s in f.things():
            assert attrs.setdefault(s.track_id, (s.colour, s.size, s.shape)) == (s.colour, s.size, s.shape)
            present.setdefault(s.track_id, []).append(t)
    reentered = [k for k, ts in present.items() if (np.diff(ts) > 1).any()]
    assert reentered, f"no track leaves and re-enters: {present}"
    stuff_masks = [f.panoptic >= 1000 for f in seq]
    assert not np.array_equal(stuff_masks[0], stuff_masks[-1]), "the camera should move"
    again = list(gen.sequence(2, 24))
    np.testing.assert_array_equal(again[17].panoptic, seq[17].panoptic)


def test_phrases_disambiguate():
    rng = np.random.default_rng(0)
    refs = [ThingRef("red", "box", "small", 10), ThingRef("red", "box", "large", 50), ThingRef("blue", "ball", "small", 5),
            ThingRef("green", "cone", "large", 90), ThingRef("green", "cone", "large", 20)]
    ph = referring_phrases(refs, rng)
    assert ph[0].canonical == "the small red box" and ph[1].canonical == "the large red box"
    assert ph[2].canonical in ("the blue ball", "the small blue ball")
    assert ph[3].canonical == "the right large green cone" and ph[4].canonical == "the left large green cone"
    assert all(p.unique for p in ph)
    assert len({p.canonical for p in ph}) == len(ph)


def test_missing_egl_names_the_packages(tmp_path):
    """Without a usable EGL driver the renderer must say which Debian packages provide one."""
    import os
    import subprocess
    import sys

    from omg_seg_core.config import PACKAGE_ROOT

    env = dict(os.environ, __EGL_VENDOR_LIBRARY_FILENAMES=str(tmp_path / "no_vendor.json"), PYTHONPATH=str(PACKAGE_ROOT))
    r = subprocess.run([sys.executable, "-c", "from omg_seg_core.data.synth.render import Renderer; Renderer(16, 16)"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "RuntimeError" in r.stderr and "libegl1 libegl-mesa0 libgl1-mesa-dri libgles2" in r.stderr, r.stderr[-2000:]


def test_video_objects_never_interpenetrate():
    """Sliding, carried and landing objects keep their footprints apart on the table in every frame."""
    from omg_seg_core.data.synth.video import animate

    g = SynthGenerator(W, H, split="train", seed=11, renderer=_NoRender())
    moved = 0
    for k in range(25):
        rng = g.rng(1, k)
        base = g.scene(k)
        scenes = animate(base, rng, 30)
        th = base.table_size[2]
        for sc in scenes:
            on = [o for o in sc.objects if abs(o.position[2] - th) < 1e-9]
            for a in range(len(on)):
                for b in range(a + 1, len(on)):
                    d = np.hypot(*(on[a].position[:2] - on[b].position[:2]))
                    assert d >= on[a].radius + on[b].radius - 1e-9, (k, on[a].uid, on[b].uid)
        moved += sum(not np.allclose(o0.position, o1.position) for o0, o1 in zip(scenes[0].objects, scenes[-1].objects))
    assert moved >= 25


def test_video_has_track_births_and_deaths():
    g = SynthGenerator(96, 72, split="train", seed=0)
    births = deaths = 0
    try:
        for k in range(6):
            present: dict[int, list[int]] = {}
            for f in g.sequence(k, 24):
                for s in f.things():
                    present.setdefault(s.track_id, []).append(f.index)
            births += sum(ts[0] >= 6 for ts in present.values())
            deaths += sum(ts[-1] <= 17 for ts in present.values())
    finally:
        g.close()
    assert births >= 1 and deaths >= 1, (births, deaths)


def test_every_texture_photo_loads_offline():
    from omg_seg_core.data.synth.textures import SURFACE_TEXTURES, texture_image, texture_names

    assert set().union(*SURFACE_TEXTURES.values()) <= set(texture_names())
    for name in texture_names():
        img = texture_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256, name
        assert img.std() > 10, f"{name} is not a photograph"


def test_torchvision_and_timm_import_after_the_renderer(tmp_path):
    """A fresh process that opens the EGL renderer first and imports torchvision / timm afterwards (what a training
    script that builds the generator before the model does) must not crash, and frames must stay identical."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import hashlib\n"
            "from omg_seg_core.data.synth.generator import SynthGenerator\n"
            "g = SynthGenerator(96, 72, seed=0)\n"
            "a = g.frame(3).rgb\n"
            "import torchvision, timm\n"
            "b = g.frame(3).rgb\n"
            "print(hashlib.md5(a.tobytes()).hexdigest() == hashlib.md5(b.tobytes()).hexdigest())\n")
    root = Path(__file__).resolve().parents[3]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.strip().splitlines()[-1] == "True"
