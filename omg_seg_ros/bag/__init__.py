"""ROS 2 bags without a ROS install (rosbags): the typestore (typestore.py), a writer and a stamp-joining reader
(io.py), recovery of damaged MCAP files (mcap_recovery.py), and bags as an evaluation source (source.py)."""
