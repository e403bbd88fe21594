#!/usr/bin/env bash
# Run a command with the environment the project's ROS 2 pieces need (from the venv, no system ROS):
# AMENT_PREFIX_PATH for ament_index_python, localhost-only discovery, and a clean ROS-wheel bootstrap state.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Large images between processes: shared memory big enough for 640x480+ frames (see the XML for why).
export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTRTPS_DEFAULT_PROFILES_FILE:-$ROOT/config/perception_fastdds.xml}"
export OMG_SEG_REFERENCE="${OMG_SEG_REFERENCE:-$ROOT/../shared/reference/omg_seg_convl}"
export PYTHONUNBUFFERED=1
exec "$@"
