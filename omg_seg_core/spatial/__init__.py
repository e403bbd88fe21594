"""3D from an aligned depth camera (ROS-free): camera intrinsics, depth images in metres, and each segment's 3D
position, box and plane in the camera optical frame (REP 103). The ROS adapter feeds it sensor_msgs depth and
camera_info; `VideoSession.step(..., depth=DepthFrame)` attaches the answers to every segment and target."""
from .boxes3d import fit_plane, segment_boxes_3d
from .camera import PinholeCamera
from .config import DepthConfig
from .depth import DEPTH_ENCODINGS, DepthFrame, StampedBuffer, depth_to_metres, match_depth_size

__all__ = ["PinholeCamera", "DepthConfig", "DepthFrame", "StampedBuffer", "DEPTH_ENCODINGS", "depth_to_metres",
           "match_depth_size", "segment_boxes_3d", "fit_plane"]
