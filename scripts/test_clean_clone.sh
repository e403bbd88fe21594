#!/usr/bin/env bash
# `make test` as CI runs it: a fresh clone of HEAD with the shared folder beside it (../shared), so the golden
# tests run instead of skipping. Usage: scripts/test_clean_clone.sh [DIR] (default: a new temporary folder).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="$(cd "$ROOT/../shared" 2>/dev/null && pwd)" || { echo "no ../shared beside $ROOT" >&2; exit 2; }
DIR="${1:-$(mktemp -d /tmp/omg_seg_clean.XXXXXX)}"
mkdir -p "$DIR"
git clone -q "$ROOT" "$DIR/main"
ln -sfn "$SHARED" "$DIR/shared"
echo "[clean clone] $DIR/main (shared: $DIR/shared -> $SHARED)"
cd "$DIR/main"
make test PYTEST_ARGS="${PYTEST_ARGS:--q -ra}"
