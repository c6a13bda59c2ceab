#!/usr/bin/env bash
# Flask-JWT-Extended interoperability check: builds the server, then runs interop/check.py
# against the real binary from a throwaway virtualenv in target/interop-venv.
#
#   bash checks/interop/run.sh
#
# Environment (optional): PYTHON (default python3) creates the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/target/interop-venv"
REQS="$ROOT/checks/interop/requirements.txt"
STAMP="$VENV/.requirements.sha256"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/debug/stores-api"

export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

log() { printf 'interop: %s\n' "$*" >&2; }

# 1. The venv: reuse it when its interpreter still works, else (re)create it.
ensure_venv "$VENV"

# 2. Requirements: install when the venv has not seen this requirements.txt yet.
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    log "installing checks/interop/requirements.txt"
    "$VENV/bin/python" -m pip install -q -r "$REQS"
    printf '%s\n' "$want" >"$STAMP"
fi

# 3. The server binary (incremental; reuses target/).
log "building the server (cargo build --bin stores-api)"
cargo build --bin stores-api

# 4. The check itself; its last line is "N passed, M failed".
exec "$VENV/bin/python" "$ROOT/checks/interop/check.py" "$BIN"
