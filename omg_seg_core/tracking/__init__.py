"""Online tracking (ROS-free): `Tracker` fills `Segments.track_ids`; `TargetManager` keeps persistent targets;
`recover_missed` re-finds objects a frame's segments missed."""
from .config import TrackerConfig
from .protocols import Resegmenter
from .recovery import recover_missed
from .targets import LOST, OCCLUDED, TRACKING, Target, TargetManager
from .tracker import CONFIRMED, TENTATIVE, Track, Tracker

__all__ = ["TrackerConfig", "Tracker", "Track", "TENTATIVE", "CONFIRMED", "TargetManager", "Target",
           "TRACKING", "OCCLUDED", "LOST", "recover_missed", "Resegmenter"]
