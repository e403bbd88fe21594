"""Generated metric depth, intrinsics and true 3D boxes agree with each other (the 3D evaluation's ground truth),
and the depth-sensor model is seeded and shaped as documented."""
import numpy as np
import pytest

from omg_seg_core.data.synth import SynthGenerator
from omg_seg_core.data.synth.depth_sensor import DepthNoise, sensor_depth


@pytest.fixture(scope="module")
def frames():
    gen = SynthGenerator(320, 240, split="val", seed=4)
    try:
        return [gen.frame(i) for i in range(3)]
    finally:
        gen.close()


def test_rendered_depth_back_projects_inside_each_objects_true_box(frames):
    """Every visible pixel of a thing, back-projected with the frame's intrinsics and clean depth, lies in that
    thing's 3D box (1 mm slack: depth-buffer quantisation at < 2 m is ~1e-6 m) - depth linearisation, the
    camera model and the world-to-optical transform are consistent."""
    for f in frames:
        assert f.depth.dtype == np.float32 and f.depth.shape == f.size and np.isfinite(f.depth).all()
        for t in f.things():
            v, u = np.nonzero(f.panoptic == t.id)
            pts = f.camera.back_project(u, v, f.depth[v, u])
            lo = np.array(t.center_3d) - np.array(t.size_3d) / 2 - 1e-3
            hi = np.array(t.center_3d) + np.array(t.size_3d) / 2 + 1e-3
            assert ((pts >= lo) & (pts <= hi)).all(), f"{t.shape} #{t.id}: pixels outside its true box"
            assert (np.array(t.size_3d) > 0).all()


def test_true_centres_project_near_their_objects(frames):
    for f in frames:
        for t in f.things():
            u, v = f.camera.project(np.array([t.center_3d]))[0]
            x, y, w, h = t.bbox
            if t.area > 200:  # unoccluded-enough objects: the centre projects inside a slightly grown 2D box
                assert x - w / 2 <= u <= x + 1.5 * w and y - h / 2 <= v <= y + 1.5 * h


def test_sensor_model_is_seeded_noisy_and_drops_readings(frames):
    f = frames[0]
    a, b = f.sensor_depth(), f.sensor_depth()
    assert np.array_equal(a, b, equal_nan=True)  # the same frame always gets the same noise
    ok = np.isfinite(a)
    assert 0.0 < 1.0 - ok.mean() < 0.3  # some readings missing (edges, dark, speckle), most kept
    err = a[ok] - f.depth[ok]
    z = f.depth[ok]
    near = z < 1.0
    # sigma = sigma_z2 * z^2 (+ 1 mm quantisation): the spread grows with distance
    assert np.std(err[near]) < np.std(err[~near])
    assert np.abs(err).max() < 10 * DepthNoise().sigma_z2 * z.max() ** 2 + 1e-3
    assert np.allclose(np.round(a[ok] * 1000), a[ok] * 1000, atol=1e-3)  # millimetre steps
    clean = sensor_depth(f.depth, f.rgb, np.random.default_rng(0), DepthNoise(0, 1.0, 0, 255, 0, 256, 0, 0, 0))
    assert np.array_equal(clean, f.depth, equal_nan=True)  # every effect off: the clean depth
