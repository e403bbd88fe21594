"""The exemplar services over real DDS (issue: "segment everything like this", "my mug"): ~/segment_like with a
click, a mask, an example on another image and a taught name; ~/add_exemplar (+ track) then "segment my ..." on
~/segment_text; list / save / remove / load; and every bad request answered with a clear error while the node
keeps serving."""
from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Point

from node_helpers import CODEC, call, srv, text_req
from test_node_text_hint import _mask, _show


@pytest.fixture(scope="module")
def kind_scene():
    from omg_seg_core.train.exemplar_eval import kind_frames

    return next(iter(kind_frames(1, seed=5)))


def _req(service: str, **kw):
    pts = kw.pop("points", ())
    return srv(service).Request(points=[Point(x=float(x), y=float(y)) for x, y in pts], **kw)


def _mono8(mask: np.ndarray):
    return CODEC.numpy_to_image((mask > 0).astype(np.uint8) * 255, "mono8", CODEC.header())


def test_segment_like_and_taught_names(client, seg_node, kind_scene, tmp_path):
    from omg_seg_core.structures import mask_iou
    from omg_seg_core.train.data import click_point
    from omg_seg_ros.msgs import segments_from_msg

    frame, uid, kind, _ = kind_scene
    mine = frame.panoptic == uid
    click = tuple(float(v) for v in click_point(mine))
    _show(client, frame)
    try:
        r = call(client, "segment_like", _req("segment_like", points=[click], max_results=5))
        assert r.success and "like the example" in r.message, r.message
        seg = segments_from_msg(r.segments)
        assert 1 <= len(seg) <= 5 and mask_iou(seg.masks[0], mine) >= 0.5 and np.all(np.diff(seg.scores) <= 0)
        assert np.all(seg.scores >= 0.7 - 1e-6)  # the default like_threshold
        by_mask = call(client, "segment_like", _req("segment_like", mask=_mono8(mine), threshold=0.5))
        assert by_mask.success and mask_iou(_mask(by_mask), mine) >= 0.5, by_mask.message
        # the example on another image (here: the same scene mirrored), the answer on the latest frame
        flipped = np.ascontiguousarray(frame.rgb[:, ::-1])
        other = call(client, "segment_like", _req("segment_like", points=[(frame.rgb.shape[1] - click[0], click[1])],
                                                  example_image=CODEC.rgb_to_image(flipped, CODEC.header())))
        assert other.success and len(other.segments.segments) >= 1, other.message

        t = call(client, "add_exemplar", _req("add_exemplar", name="My Thing", points=[click], track=True))
        assert t.success and t.views == 1 and t.target_id > 0 and "taught 'my thing'" in t.message, t.message
        assert mask_iou(segments_from_msg(t.example).masks[0], mine) >= 0.5
        lst = call(client, "list_exemplars", srv("list_exemplars").Request())
        assert lst.success and list(lst.names) == ["my thing"] and list(lst.views) == [1]
        assert lst.sources[0].startswith("click at")
        _show(client, frame)  # a new frame: the target is found on it
        ans = call(client, "segment_text", text_req("segment my thing"))
        assert ans.success and mask_iou(_mask(ans), mine) >= 0.5, ans.message
        named = call(client, "segment_like", _req("segment_like", name="my thing"))
        assert named.success and named.segments.segments[0].class_name == "my thing", named.message

        path = str(tmp_path / "exemplars.npz")
        s = call(client, "save_exemplars", srv("save_exemplars").Request(path=path))
        assert s.success and s.views == 1, s.message
        rm = call(client, "remove_exemplar", srv("remove_exemplar").Request(name=""))
        assert rm.success and rm.removed == 1
        gone = call(client, "segment_like", _req("segment_like", name="my thing"))
        assert not gone.success and "no exemplar named 'my thing'" in gone.message
        ld = call(client, "load_exemplars", srv("load_exemplars").Request(path=path))
        assert ld.success and ld.views == 1 and "my thing" in ld.message, ld.message
    finally:
        call(client, "remove_exemplar", srv("remove_exemplar").Request(name=""))
        call(client, "remove_target", srv("remove_target").Request(id=0))
    assert seg_node.alive()


def test_bad_exemplar_requests(client, seg_node, kind_scene, tmp_path):
    frame, uid, _, _ = kind_scene
    _show(client, frame)
    h, w = frame.rgb.shape[:2]
    empty = np.zeros((h, w), bool)
    bad_like = [
        (_req("segment_like"), "no example"),
        (_req("segment_like", name="nobody"), "no exemplar named"),
        (_req("segment_like", points=[(1e6, 0.0)]), "point"),
        (_req("segment_like", points=[(float("nan"), 1.0)]), "finite"),
        (_req("segment_like", boxes=[0.0, 0.0, 10.0, 10.0, 5.0, 5.0, 20.0, 20.0]), "ONE object"),
        (_req("segment_like", mask=_mono8(empty)), "empty"),
        (_req("segment_like", mask=_mono8(np.ones((h // 2, w), bool))), "size"),
        (_req("segment_like", mask=CODEC.rgb_to_image(frame.rgb, CODEC.header())), "mask"),
        (_req("segment_like", points=[(5.0, 5.0)], threshold=float("nan")), "threshold"),
        (_req("segment_like", points=[(5.0, 5.0)], max_results=-1), "max_results"),
        (_req("segment_like", points=[(5.0, 5.0)] * 100), "limits.max_prompts"),
    ]
    for req, words in bad_like:
        r = call(client, "segment_like", req)
        assert not r.success and words in r.message, (words, r.message)
    bad_add = [(_req("add_exemplar", name="", points=[(5.0, 5.0)]), "empty"),
               (_req("add_exemplar", name="my mug!", points=[(5.0, 5.0)]), "letters"),
               (_req("add_exemplar", name="x" * 100, points=[(5.0, 5.0)]), "too long"),
               (_req("add_exemplar", name="mug"), "no example")]
    for req, words in bad_add:
        r = call(client, "add_exemplar", req)
        assert not r.success and words in r.message, (words, r.message)
    ok = client.set_params("omg_seg", **{"limits.max_exemplars": 1})
    assert all(o.successful for o in ok)
    try:
        from omg_seg_core.train.data import click_point

        x, y = click_point(frame.panoptic == uid)
        assert call(client, "add_exemplar", _req("add_exemplar", name="one", points=[(x, y)])).success
        r = call(client, "add_exemplar", _req("add_exemplar", name="two", points=[(x, y)]))
        assert not r.success and "limits.max_exemplars" in r.message, r.message
        for name, path, words in (("load_exemplars", str(tmp_path / "missing.npz"), "not found"),
                                  ("save_exemplars", "", "no path"), ("load_exemplars", "", "no path")):
            r = call(client, name, srv(name).Request(path=path))
            assert not r.success and words in r.message, r.message
        (tmp_path / "junk.npz").write_bytes(b"junk")
        r = call(client, "load_exemplars", srv("load_exemplars").Request(path=str(tmp_path / "junk.npz")))
        assert not r.success and "not an exemplar file" in r.message
        assert call(client, "list_exemplars", srv("list_exemplars").Request()).names == ["one"]  # unchanged
        r = call(client, "remove_exemplar", srv("remove_exemplar").Request(name="nobody"))
        assert not r.success and "no exemplar named" in r.message
    finally:
        client.set_params("omg_seg", **{"limits.max_exemplars": 32})
        call(client, "remove_exemplar", srv("remove_exemplar").Request(name=""))
    assert seg_node.alive()


def test_exemplars_file_survives_a_reload(client, seg_node, kind_scene, tmp_path):
    """exemplars.file: ~/save_exemplars with an empty path writes it, and configure (a restart, here cleanup +
    configure, which drops the model and its exemplars) loads it again."""
    from omg_seg_core.train.data import click_point

    frame, uid, _, _ = kind_scene
    _show(client, frame)
    path = str(tmp_path / "robot_exemplars.npz")
    assert all(r.successful for r in client.set_params("omg_seg", **{"exemplars.file": path}))
    try:
        x, y = click_point(frame.panoptic == uid)
        assert call(client, "add_exemplar", _req("add_exemplar", name="my thing", points=[(x, y)])).success
        assert call(client, "save_exemplars", srv("save_exemplars").Request(path="")).success
        for transition in ("deactivate", "cleanup", "configure", "activate"):
            assert client.lifecycle("omg_seg", transition), transition
        lst = call(client, "list_exemplars", srv("list_exemplars").Request())
        assert lst.success and list(lst.names) == ["my thing"], lst.message
        assert f"loaded from {path}" in seg_node.log()
        # limits.max_exemplars holds at configure too: a file with more names than it allows is not loaded
        _show(client, frame)  # configure starts without frames
        assert call(client, "add_exemplar", _req("add_exemplar", name="other thing", points=[(x, y)])).success
        assert call(client, "save_exemplars", srv("save_exemplars").Request(path="")).success
        assert all(r.successful for r in client.set_params("omg_seg", **{"limits.max_exemplars": 1}))
        for transition in ("deactivate", "cleanup", "configure", "activate"):
            assert client.lifecycle("omg_seg", transition), transition
        assert call(client, "list_exemplars", srv("list_exemplars").Request()).names == []
        assert "exemplars.file not loaded" in seg_node.log() and "limits.max_exemplars" in seg_node.log()
    finally:
        client.set_params("omg_seg", **{"exemplars.file": "", "limits.max_exemplars": 32})
        call(client, "remove_exemplar", srv("remove_exemplar").Request(name=""))
