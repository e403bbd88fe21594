"""The message codec's 3D encoders: Detection3DArray, MarkerArray, a labelled PointCloud2, and depth / camera_info for
bags (mixed into `msgs.MessageCodec`, so the node and the bag tools share it; the decoders `depth_from_msg` and
`camera_from_info` are in msgs.py with the other decoders).

Conventions (docs/ros.md "Depth and 3D"): every 3D output is stamped with the COLOUR image's header, so its
frame_id is the colour camera's optical frame (REP 103: x right, y down, z forward) and positions are metres;
tf2 transforms them into the robot's frames. Depth: 16UC1 millimetres or 32FC1 metres (REP 117 special values).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from omg_seg_core.spatial import PinholeCamera
from omg_seg_core.structures import Boxes3D, Segments

#: PointField datatypes (sensor_msgs/PointField constants).
_UINT16, _FLOAT32 = 4, 7
#: The labelled cloud's point layout: x, y, z metres, rgb packed as PCL does (0x00RRGGBB in a float32's bits),
#: class id (65535 = none) and instance id (track id, 0 = none).
CLOUD_FIELDS = (("x", 0, _FLOAT32), ("y", 4, _FLOAT32), ("z", 8, _FLOAT32), ("rgb", 12, _FLOAT32),
                ("class", 16, _UINT16), ("instance", 18, _UINT16))
_CLOUD_DTYPE = np.dtype({"names": [f[0] for f in CLOUD_FIELDS], "formats": ["<f4", "<f4", "<f4", "<u4", "<u2", "<u2"],
                         "offsets": [f[1] for f in CLOUD_FIELDS], "itemsize": 20})
#: Marker namespaces of ~/output/markers.
MARKER_BOXES, MARKER_LABELS = "boxes", "labels"


#: (x, y, z, w) of the identity rotation.
_IDENTITY = (0.0, 0.0, 0.0, 1.0)


def box_quaternions(b: Optional[Boxes3D]) -> np.ndarray:
    """(x, y, z, w) [N, 4] of every box's rotation, in one call per message (none without boxes)."""
    if b is None or len(b) == 0:
        return np.zeros((0, 4))
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(b.rotation.astype(np.float64)).as_quat()


class Spatial3DEncoders:
    """3D encoders of `MessageCodec` (uses its `new` and `_bytes`)."""

    def _point(self, p: Sequence[float]) -> Any:
        return self.new("geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))

    def _vector3(self, v: Sequence[float]) -> Any:
        return self.new("geometry_msgs/msg/Vector3", x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def _quat(self, q: Sequence[float]) -> Any:
        """geometry_msgs/Quaternion from (x, y, z, w)."""
        return self.new("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    def _pose3d(self, position: Sequence[float], q: Sequence[float]) -> Any:
        return self.new("geometry_msgs/msg/Pose", position=self._point(position), orientation=self._quat(q))

    def segment_3d_fields(self, seg: Segments, i: int, quats: np.ndarray) -> dict[str, Any]:
        """The Segment.msg 3D fields of row i (has_position false without a valid answer); quats: box_quaternions of
        seg.boxes_3d, computed once per message."""
        b = seg.boxes_3d
        if b is None or not b.valid[i]:
            return {"has_position": False, "position": self._point((0, 0, 0)), "size": self._vector3((0, 0, 0)),
                    "orientation": self._quat(_IDENTITY), "num_points": int(b.num_points[i]) if b is not None else 0}
        return {"has_position": True, "position": self._point(b.position[i]), "size": self._vector3(b.size[i]),
                "orientation": self._quat(quats[i]), "num_points": int(b.num_points[i])}

    def detections_3d_msg(self, seg: Segments, header: Any) -> Any:
        """Things with a valid 3D answer -> vision_msgs/Detection3DArray (id = track id, "" untracked; one
        hypothesis: class name + score, its pose = the box pose)."""
        v = "vision_msgs/msg/"
        dets = []
        b = seg.boxes_3d
        quats = box_quaternions(b)
        for i in range(len(seg) if b is not None else 0):
            if not seg.is_thing[i] or not b.valid[i]:
                continue
            pose = self._pose3d(b.position[i], quats[i])
            score = float(seg.scores[i])
            hyp = self.new(v + "ObjectHypothesisWithPose",
                           hypothesis=self.new(v + "ObjectHypothesis", class_id=str(seg.class_names[i]),
                                               score=score if np.isfinite(score) else 0.0),
                           pose=self.new("geometry_msgs/msg/PoseWithCovariance", pose=pose,
                                         covariance=np.zeros(36, np.float64)))
            tid = int(seg.track_ids[i])
            dets.append(self.new(v + "Detection3D", header=header, results=[hyp], id=str(tid) if tid > 0 else "",
                                 bbox=self.new(v + "BoundingBox3D", center=pose, size=self._vector3(b.size[i]))))
        return self.new(v + "Detection3DArray", header=header, detections=dets)

    def markers_msg(self, seg: Segments, header: Any, previous: Sequence[int] = ()) -> tuple[Any, list[int]]:
        """visualization_msgs/MarkerArray: per thing with a valid 3D answer a translucent CUBE (ns "boxes") and a
        text "<class> #<id> <z> m" (ns "labels"); marker id = track id (untracked: 100000 + row). Markers of
        `previous` ids that are gone get DELETE. Returns (message, ids drawn now) - pass the ids back next frame."""
        m = "visualization_msgs/msg/Marker"
        b = seg.boxes_3d
        quats = box_quaternions(b)
        markers, ids = [], []
        for i in range(len(seg) if b is not None else 0):
            if not seg.is_thing[i] or not b.valid[i]:
                continue
            tid = int(seg.track_ids[i])
            mid = tid if tid > 0 else 100000 + i
            ids.append(mid)
            r, g, bl = _id_colour(mid)
            colour = self.new("std_msgs/msg/ColorRGBA", r=float(r), g=float(g), b=float(bl), a=0.4)
            markers.append(self.new(m, header=header, ns=MARKER_BOXES, id=mid, type=1, action=0,
                                    pose=self._pose3d(b.position[i], quats[i]),
                                    scale=self._vector3(np.maximum(b.size[i], 0.005)), color=colour,
                                    frame_locked=False))
            label = f"{seg.class_names[i]} #{tid} {float(b.position[i, 2]):.2f} m" if tid > 0 else \
                f"{seg.class_names[i]} {float(b.position[i, 2]):.2f} m"
            top = b.position[i] - np.array([0, b.size[i, 1] / 2 + 0.02, 0], np.float32)  # above it: -y is up
            markers.append(self.new(m, header=header, ns=MARKER_LABELS, id=mid, type=9, action=0,
                                    pose=self._pose3d(top, _IDENTITY),
                                    scale=self._vector3((0.0, 0.0, 0.03)), text=label,
                                    color=self.new("std_msgs/msg/ColorRGBA", r=1.0, g=1.0, b=1.0, a=1.0),
                                    frame_locked=False))
        for gone in sorted(set(previous) - set(ids)):
            for ns in (MARKER_BOXES, MARKER_LABELS):
                markers.append(self.new(m, header=header, ns=ns, id=int(gone), action=2))
        return self.new("visualization_msgs/msg/MarkerArray", markers=markers), ids

    def points_msg(self, seg: Segments, rgb: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera, header: Any,
                   decimation: int = 4) -> Any:
        """Labelled sensor_msgs/PointCloud2 (CLOUD_FIELDS) of every `decimation`-th pixel (rows and columns) with
        valid depth; unorganised (height 1), little endian, dense."""
        d = max(1, int(decimation))
        h, w = depth_m.shape
        cam = camera.scaled_to(w, h)
        vs, us = np.mgrid[0:h:d, 0:w:d]
        z = depth_m[vs, us]
        ok = np.isfinite(z)
        vs, us, z = vs[ok], us[ok], z[ok]
        pts = cam.back_project(us, vs, z)
        cls = seg.semantic_map()[vs, us]
        inst = seg.instance_id_map()[vs, us]
        c = rgb[vs, us].astype(np.uint32)
        cloud = np.zeros(len(z), _CLOUD_DTYPE)
        cloud["x"], cloud["y"], cloud["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
        cloud["rgb"] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
        cloud["class"], cloud["instance"] = cls, inst
        fields = [self.new("sensor_msgs/msg/PointField", name=n, offset=o, datatype=t, count=1)
                  for n, o, t in CLOUD_FIELDS]
        return self.new("sensor_msgs/msg/PointCloud2", header=header, height=1, width=int(len(z)), fields=fields,
                        is_bigendian=False, point_step=_CLOUD_DTYPE.itemsize,
                        row_step=_CLOUD_DTYPE.itemsize * int(len(z)),
                        data=self._bytes(cloud.view(np.uint8).reshape(-1)), is_dense=True)

    def depth_image_msg(self, depth_m: np.ndarray, header: Any) -> Any:
        """float32 metres (NaN = none) -> 16UC1 millimetres (0 = none), as RealSense drivers publish."""
        mm = np.where(np.isfinite(depth_m), np.clip(np.round(depth_m * 1000.0), 0, 65535), 0).astype(np.uint16)
        return self.numpy_to_image(mm, "16UC1", header)

    def camera_info_msg(self, camera: PinholeCamera, header: Any) -> Any:
        """PinholeCamera -> sensor_msgs/CameraInfo (plumb_bob, zero distortion, K and P from the intrinsics)."""
        k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
        p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        roi = self.new("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0,
                       do_rectify=False)
        return self.new("sensor_msgs/msg/CameraInfo", header=header, height=int(camera.height),
                        width=int(camera.width), distortion_model="plumb_bob", d=np.zeros(5, np.float64),
                        k=np.array(k, np.float64), r=np.eye(3).reshape(-1), p=np.array(p, np.float64),
                        binning_x=0, binning_y=0, roi=roi)


def _id_colour(i: int) -> tuple[float, float, float]:
    """A stable colour per id (golden-ratio hue walk)."""
    import colorsys

    return colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 0.95)


__all__ = ["Spatial3DEncoders", "box_quaternions", "CLOUD_FIELDS", "MARKER_BOXES", "MARKER_LABELS"]
