#!/usr/bin/env bash
# Runs load/flask_app.py (the Flask-JWT-Extended comparison target of load/run.sh)
# under gunicorn, in a venv of its own. `bash load/flask-run.sh --help` explains it.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: JWT_SECRET_KEY=... bash load/flask-run.sh [gunicorn args...]

Creates once a venv at $FLASK_VENV (default ~/.cache/stores-api/flask-venv) with
flask 3.1, flask-jwt-extended 4.7.4, bcrypt, gunicorn and psycopg 3 (from PyPI), then execs
gunicorn on load/flask_app.py: the process is then the gunicorn master, whose PID is
the one to give to `load/run.sh --url ... --pid PID`. Extra arguments go to gunicorn.

Environment:
  JWT_SECRET_KEY  required: the HMAC key of the tokens
  PORT            port on 127.0.0.1 (default 5000)
  FLASK_WORKERS   gunicorn workers (default: nproc)
  BCRYPT_COST     bcrypt cost of /register (default 12)
  FLASK_DB        the database: a postgres:// URL (PostgreSQL, one connection per
                  worker), else a SQLite file (default stores-api-flask.db in the temp
                  dir); the tables are created when missing
  FLASK_VENV      the venv (default ~/.cache/stores-api/flask-venv)

Example:
  JWT_SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') PORT=5000 \
      bash load/flask-run.sh &
  bash load/run.sh --url http://127.0.0.1:5000 --pid $! health read write
EOF
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac

if [ -z "${JWT_SECRET_KEY:-}" ]; then
    printf '%s\n' "flask-run: JWT_SECRET_KEY must be set (e.g. \$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'))" >&2
    exit 2
fi
export JWT_SECRET_KEY
# gunicorn imports load/flask_app.py: no __pycache__ left in the repository's tree.
export PYTHONDONTWRITEBYTECODE=1
export BCRYPT_COST="${BCRYPT_COST:-12}"

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FLASK_VENV:-$HOME/.cache/stores-api/flask-venv}"
PORT="${PORT:-5000}"
WORKERS="${FLASK_WORKERS:-$(nproc)}"
PACKAGES=("flask==3.1.*" "flask-jwt-extended==4.7.4" "bcrypt" "gunicorn" "psycopg[binary]==3.3.9")

# The marker records what was installed: a venv from another package list is refreshed.
MARKER="$VENV/.stores-api-packages"
if [ ! -x "$VENV/bin/gunicorn" ] || [ "$(cat "$MARKER" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
    echo "flask-run: preparing the venv at $VENV" >&2
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
    printf '%s\n' "${PACKAGES[*]}" >"$MARKER"
fi

# Recent gunicorn releases open a control socket at ~/.gunicorn/gunicorn.ctl by default,
# one path for every instance: not needed here, so off where the option exists.
EXTRA=()
case "$("$VENV/bin/gunicorn" --help 2>/dev/null || true)" in
    *--no-control-socket*) EXTRA=(--no-control-socket) ;;
esac

# A PostgreSQL URL carries a password: only its kind is shown.
case "${FLASK_DB:-}" in
    postgres://*|postgresql://*) DB_SHOWN="PostgreSQL (FLASK_DB)" ;;
    *) DB_SHOWN="${FLASK_DB:-<temp dir>/stores-api-flask.db}" ;;
esac
echo "flask-run: gunicorn (pid $$) listening on http://127.0.0.1:$PORT with $WORKERS worker(s), db $DB_SHOWN" >&2
exec "$VENV/bin/gunicorn" -w "$WORKERS" -b "127.0.0.1:$PORT" --chdir "$DIR" ${EXTRA[@]+"${EXTRA[@]}"} "$@" flask_app:app
