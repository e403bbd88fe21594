"""The node's tests talk to it over real DDS: they need rclpy (fixtures in ../conftest.py)."""
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed in this environment")
