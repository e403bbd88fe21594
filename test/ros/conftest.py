"""Fixtures for tests over REAL DDS: a random ROS_DOMAIN_ID per session, localhost discovery, one client node,
and the node under test in its own process (random weights: a real, untrained model; fine for plumbing).

Requires the interface packages built into the venv (scripts/build_interfaces.sh, run by `make test`). The node
tests (node/) and the modules that import rclpy skip without it; the bag tests (bag/, cli/) need no ROS install.
"""
from __future__ import annotations

import os
import random
import time

import pytest

# Must be set before the first rclpy context exists (DDS reads them at participant creation).
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ time.time_ns()).randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"



@pytest.fixture(scope="session")
def client():
    pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed in this environment")
    from ros_helpers import Client, require_interfaces

    require_interfaces()
    c = Client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def seg_node(client, tmp_path_factory):
    """The node under test (random weights: a real, untrained model; fine for plumbing)."""
    from ros_helpers import running_node

    with running_node(client, tmp_path_factory, "omg_seg") as proc:
        yield proc
