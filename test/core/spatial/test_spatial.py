"""spatial/: camera model, depth units (REP 117), size matching, stamp pairing and the per-segment 3D answer on
analytic depth images whose true answer is known exactly."""
import math

import numpy as np
import pytest

from omg_seg_core.spatial import (DepthConfig, PinholeCamera, StampedBuffer, depth_to_metres, fit_plane,
                                  match_depth_size, segment_boxes_3d)
from omg_seg_core.structures import QUALITY_FEW_POINTS, QUALITY_NO_DEPTH, QUALITY_OK, Boxes3D, Segments

CAM = PinholeCamera(200.0, 200.0, 159.5, 119.5, 320, 240)


def test_camera_round_trip_and_conventions():
    pts = np.array([[0.1, -0.2, 1.0], [-0.3, 0.05, 2.5]], np.float32)
    uv = CAM.project(pts)
    back = CAM.back_project(uv[:, 0], uv[:, 1], pts[:, 2])
    assert np.allclose(back, pts, atol=1e-6)
    # x right, y down: a point right of and below the axis lands right of and below the principal point
    u, v = CAM.project(np.array([[0.1, 0.1, 1.0]]))[0]
    assert u > CAM.cx and v > CAM.cy
    assert np.isnan(CAM.project(np.array([[0.0, 0.0, -1.0]]))).all()  # behind the camera


def test_camera_from_matrices_scaling_and_bad_calibration():
    k = [200.0, 0, 159.5, 0, 210.0, 119.5, 0, 0, 1]
    p = [200.0, 0, 159.5, 0, 0, 210.0, 119.5, 0, 0, 0, 1, 0]
    assert PinholeCamera.from_matrix(k, 320, 240) == PinholeCamera.from_matrix(p, 320, 240)
    half = PinholeCamera.from_matrix(k, 320, 240).scaled_to(160, 120)
    assert (half.fx, half.fy, half.cx, half.cy) == (100.0, 105.0, 79.5, 59.5)  # pixel centres kept
    for bad in ([0.0] * 9, [math.nan] + [0.0] * 8, [200.0, 0, 10, 0, -1.0, 10, 0, 0, 1]):
        with pytest.raises(ValueError):
            PinholeCamera.from_matrix(bad, 320, 240)
    with pytest.raises(ValueError):
        PinholeCamera.from_matrix(k[:8], 320, 240)


def test_depth_units_and_rep117_special_values():
    mm = np.array([[0, 1000], [65535, 250]], np.uint16)
    m = depth_to_metres(mm, "16UC1")
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.0) and m[1, 1] == pytest.approx(0.25)
    f = np.array([[np.nan, np.inf], [-np.inf, 1.5]], np.float32)
    m = depth_to_metres(f, "32FC1")
    assert np.isnan(m[:, 0]).all() and np.isnan(m[0, 1]) and m[1, 1] == pytest.approx(1.5)
    assert depth_to_metres(mm, "16uc1")[0, 1] == pytest.approx(1.0)  # encodings match case-insensitively
    with pytest.raises(ValueError, match="unsupported depth encoding"):
        depth_to_metres(mm, "rgb8")
    with pytest.raises(ValueError):
        depth_to_metres(np.zeros((2, 2, 3), np.uint16), "16UC1")


def test_depth_size_matching_is_nearest_and_refuses_another_aspect():
    d = np.arange(12, dtype=np.float32).reshape(3, 4)
    up = match_depth_size(d, (6, 8))
    assert up.shape == (6, 8) and set(np.unique(up)) == set(d.ravel())  # nearest: no new values
    assert (up[::2, ::2] == d).all()
    with pytest.raises(ValueError, match="aspect"):
        match_depth_size(d, (6, 6))


def test_stamped_buffer_pairs_nearest_within_skew():
    b = StampedBuffer(3)
    for t in (1.00, 1.10, 1.20, 1.30):  # capacity 3: 1.00 falls out
        b.put(t, f"d{t:.2f}")
    assert b.nearest(1.12, 0.05) == (1.10, "d1.10")
    assert b.nearest(1.00, 0.05) is None  # evicted, and 1.10 is too far
    assert b.nearest(1.50, 0.05) is None
    assert b.nearest(float("nan"), 1.0) is None


def _fronto_box_scene(bleed: int = 0):
    """A 0.2 m wide, 0.1 m tall fronto-parallel face at z = 1 m in front of a wall at 2 m; the mask covers the face
    plus `bleed` pixels of wall on every side (a mask edge that spills onto the background)."""
    h, w = CAM.height, CAM.width
    depth = np.full((h, w), 2.0, np.float32)
    u0, u1 = 140, 180   # 40 px = 0.2 m at 1 m (fx 200), centred on cx = 159.5
    v0, v1 = 110, 130   # 20 px = 0.1 m, centred on cy = 119.5
    depth[v0:v1, u0:u1] = 1.0
    mask = np.zeros((h, w), bool)
    mask[v0 - bleed:v1 + bleed, u0 - bleed:u1 + bleed] = True
    seg = Segments(mask[None], [0.9], [0], ["box"], [True])
    return seg, depth


@pytest.mark.parametrize("bleed", [0, 2])
def test_box_of_a_known_face_despite_background_pixels(bleed):
    seg, depth = _fronto_box_scene(bleed)
    b = segment_boxes_3d(seg, depth, CAM, DepthConfig(percentile=0.0, erode_px=1))
    assert b.quality[0] == QUALITY_OK and b.num_points[0] > 500
    # the face is 40 x 20 px, i.e. 0.2 x 0.1 m; the extent is read at pixel centres (one pixel = 5 mm less) and
    # the 1 px erosion is given back: within one pixel (5 mm) of the truth
    assert b.size[0, 0] == pytest.approx(0.2, abs=0.006) and b.size[0, 1] == pytest.approx(0.1, abs=0.006)
    # completion: a face of a thing seen head-on is min(width, height) deep, behind its visible surface
    assert b.size[0, 2] == pytest.approx(0.1, abs=0.006)
    assert b.surface[0, 2] == pytest.approx(1.0, abs=1e-4)      # the visible face, not the wall behind
    assert b.position[0, 2] == pytest.approx(1.0 + b.size[0, 2] / 2, abs=1e-3)
    assert abs(b.position[0, 0]) < 0.003 and abs(b.position[0, 1]) < 0.003  # centred on the optical axis
    assert np.allclose(b.rotation[0], np.eye(3)) and np.isnan(b.plane[0]).all()
    raw = segment_boxes_3d(seg, depth, CAM, DepthConfig(percentile=0.0, complete=False))
    assert raw.size[0, 2] == pytest.approx(0.0, abs=1e-3)  # without completion: only the visible face


def test_invalid_and_out_of_range_depth_gives_no_answer():
    seg, depth = _fronto_box_scene()
    nan = segment_boxes_3d(seg, np.full_like(depth, np.nan), CAM)
    assert nan.quality[0] == QUALITY_NO_DEPTH and np.isnan(nan.position[0]).all() and not nan.valid[0]
    far = segment_boxes_3d(seg, depth, CAM, DepthConfig(max_m=0.5))
    assert far.quality[0] == QUALITY_NO_DEPTH
    few = segment_boxes_3d(seg, depth, CAM, DepthConfig(min_points=100000))
    assert few.quality[0] == QUALITY_FEW_POINTS and few.num_points[0] > 0
    with pytest.raises(ValueError, match="depth"):
        segment_boxes_3d(seg, depth[:100], CAM)


def test_stuff_gets_a_plane_not_a_box():
    """A floor plane y = 0.5 m (camera looking along it): the fit recovers the normal (0, -1, 0) and offset."""
    h, w = CAM.height, CAM.width
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = np.full((h, w), np.nan, np.float32)
    below = v > CAM.cy + 5
    depth[below] = 0.5 * CAM.fy / (v[below] - CAM.cy)  # y = (v - cy) z / fy = 0.5
    seg = Segments(below[None], [0.9], [5], ["floor"], [False])
    b = segment_boxes_3d(seg, depth, CAM, DepthConfig(max_m=50.0))
    n, d = b.plane[0, :3], b.plane[0, 3]
    assert np.allclose(n, [0, -1, 0], atol=1e-3) and d == pytest.approx(0.5, abs=1e-3)  # towards the camera
    assert (b.size[0] == 0).all() and b.valid[0]
    assert np.allclose(fit_plane(np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1.0]])), [0, 0, -1, 1])


def test_oriented_box_follows_a_tilted_face():
    """A face tilted 30 degrees about y: the PCA box's first two axes lie in the face."""
    h, w = CAM.height, CAM.width
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    x_over_z = (u - CAM.cx) / CAM.fx
    t = np.tan(np.radians(30))
    depth = (1.0 / (1.0 - t * x_over_z)).astype(np.float32)  # plane z = 1 + t x
    mask = (np.abs(u - CAM.cx) < 30) & (np.abs(v - CAM.cy) < 30)
    seg = Segments(mask[None], [0.9], [0], ["box"], [True])
    b = segment_boxes_3d(seg, depth, CAM, DepthConfig(oriented=True, complete=False))
    normal = np.array([t, 0.0, -1.0]) / np.hypot(t, 1.0)
    assert abs(b.rotation[0][:, 2] @ normal) == pytest.approx(1.0, abs=1e-3)  # least-variance axis = the normal
    assert b.size[0, 2] == pytest.approx(0.0, abs=2e-3)
    assert np.linalg.det(b.rotation[0]) == pytest.approx(1.0, abs=1e-5)


def test_boxes_3d_follow_segment_rows():
    seg, depth = _fronto_box_scene()
    two = Segments.cat([seg, seg])
    two.boxes_3d = segment_boxes_3d(two, depth, CAM)
    assert len(two[[1]].boxes_3d) == 1 and np.allclose(two[[1]].boxes_3d.position, two.boxes_3d.position[1])
    assert len(Segments.cat([two, two]).boxes_3d) == 4
    assert Segments.cat([two, seg]).boxes_3d is None  # a part without 3D: none for the whole
    assert len(Boxes3D.empty(3)) == 3 and not Boxes3D.empty(3).valid.any()
    with pytest.raises(ValueError):
        Segments(two.masks, two.scores, two.class_ids, two.class_names, two.is_thing, boxes_3d=Boxes3D.empty(1))


def test_config_refuses_bad_values():
    for kw in ({"min_m": 2.0, "max_m": 1.0}, {"percentile": 50.0}, {"erode_px": -1}, {"min_points": 0},
               {"max_m": float("nan")}, {"outlier_mads": 0.0}):
        with pytest.raises(ValueError, match="depth"):
            DepthConfig(**kw)
