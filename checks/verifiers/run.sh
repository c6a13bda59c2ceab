#!/usr/bin/env bash
# JWKS verifier check: PyJWT, jose and Flask-JWT-Extended verify this service's
# public-key tokens (EdDSA, ES256, RS256) against the real binary, and a key rotation on
# two instances over one PostgreSQL database refuses nothing. See checks/verifiers/README.md.
#
#   bash checks/verifiers/run.sh
#
# Installs what it needs: checks/verifiers/requirements.txt into a virtualenv in
# target/verifiers-venv, and jose from checks/verifiers/package-lock.json (npm ci into
# checks/verifiers/node_modules), each again only when its pinned list changed. Builds
# the server (cargo build --bin stores-api, into CARGO_TARGET_DIR when set), starts
# PostgreSQL with scripts/postgres.sh, makes a database of its own there for the run and
# drops it at the end, then runs check.py. Environment (optional): PYTHON (default
# python3) creates the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/checks/verifiers"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/target/verifiers-venv"
REQS="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"
NODE_STAMP="$HERE/node_modules/.package-lock.sha256"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/debug/stores-api"

export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

log() { printf 'verifiers: %s\n' "$*" >&2; }

# 1. Python: PyJWT with cryptography, Flask-JWT-Extended and Flask, pinned.
ensure_venv "$VENV"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    log "installing checks/verifiers/requirements.txt"
    "$VENV/bin/python" -m pip install -q -r "$REQS"
    printf '%s\n' "$want" >"$STAMP"
fi

# 2. Node: jose, pinned by package-lock.json; reinstalled when the lock changes.
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    log "ERROR: node and npm are needed (Debian: apt-get install nodejs npm)"
    exit 1
fi
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$NODE_STAMP" 2>/dev/null || true)" != "$want" ] || [ ! -d "$HERE/node_modules/jose" ]; then
    log "installing checks/verifiers/package-lock.json (npm ci)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$NODE_STAMP"
fi

# 3. The server binary (incremental).
log "building the server (cargo build --bin stores-api)"
cargo build --bin stores-api

# 4. PostgreSQL, and a database of this run's own for the two instances.
PG_URL="$(bash "$ROOT/scripts/postgres.sh" </dev/null | tail -n1)"
case "$PG_URL" in
    postgres://*) ;;
    *) log "ERROR: scripts/postgres.sh did not print a postgres:// URL (got: '$PG_URL')"; exit 1 ;;
esac
DB_NAME="stores_verifiers_$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
pg() { psql -X -q -v ON_ERROR_STOP=1 -d "$PG_URL" -c "$1" >/dev/null; }
drop_db() { pg "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" || log "could not drop database $DB_NAME"; }
trap drop_db EXIT
trap 'exit 130' INT TERM
pg "CREATE DATABASE \"$DB_NAME\""
url_base="${PG_URL%%\?*}"
DB_URL="${url_base%/*}/$DB_NAME${PG_URL#"$url_base"}"
log "database $DB_NAME for the rotation"

# 5. The check itself; its last line is "N passed, M failed".
status=0
VERIFIERS_DATABASE_URL="$DB_URL" "$VENV/bin/python" "$HERE/check.py" "$BIN" </dev/null || status=$?
exit "$status"
