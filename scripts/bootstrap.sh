#!/usr/bin/env bash
# Idempotent set-up of .venv on a fresh Debian machine: Python venv, pinned requirements (torch from the local
# wheel files), this package in editable mode, and the ROS 2 interface packages built into the venv.
# A stamp (hash of every input) makes a second run a no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON_BIN:-$(command -v python3.11 || command -v python3)}"

inputs=(requirements-torch.txt requirements.txt setup.py package.xml scripts/bootstrap.sh scripts/build_interfaces.sh)
while IFS= read -r f; do inputs+=("$f"); done < <(find msg -type f 2>/dev/null | sort)
existing=()
for f in "${inputs[@]}"; do [ -f "$f" ] && existing+=("$f"); done
stamp_hash=$( { "$PYTHON_BIN" --version; cat "${existing[@]}"; } | sha256sum | cut -c1-16)
STAMP="$VENV/.omg_seg_bootstrap-$stamp_hash"
if [ -f "$STAMP" ]; then
  exit 0
fi

echo "[bootstrap] setting up $VENV (this takes a few minutes the first time)"
# Debian packages: Mesa's software EGL for the headless scene renderer (moderngl), cmake/g++ for the interface build.
DEB_PKGS=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 cmake g++)
missing=()
for p in "${DEB_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[bootstrap] apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "[bootstrap] WARNING: missing Debian packages ${missing[*]}; install them (sudo apt-get install ${missing[*]})" >&2
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON_BIN" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" -r requirements-torch.txt
"${PIP[@]}" -r requirements.txt
"${PIP[@]}" --no-deps --no-build-isolation -e .
if [ -f scripts/build_interfaces.sh ]; then
  VENV="$VENV" bash scripts/build_interfaces.sh
fi
rm -f "$VENV"/.omg_seg_bootstrap-*
touch "$STAMP"
echo "[bootstrap] done"
