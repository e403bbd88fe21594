"""omg_seg_ros: the thin ROS 2 adapter around omg_seg_core."""
