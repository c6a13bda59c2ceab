#!/usr/bin/env bash
# The load kit's side by side: this service and the Flask-JWT-Extended peer
# (load/flask_app.py), each on a fresh database of the same backend, driven alike by
# load/run.sh, round by round; load/chart.py makes the table and the chart.
# `bash load/compare.sh --help` explains it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALLOWED="health read me store tag write login refresh login-storm"
DEFAULT_SCENARIOS="health read me store tag write login login-storm"

usage() {
    cat <<'EOF'
Usage: bash load/compare.sh [options] [scenario ...]

Side by side, on one machine and in one run: this service (the release build) and the
Flask-JWT-Extended peer (load/flask_app.py under gunicorn, one sync worker per core,
started by load/flask-run.sh). Each gets a fresh database of the same backend: a SQLite
file of its own, or with --postgres a database of its own on the same PostgreSQL
server. This service runs as load/run.sh runs it (APP_ENV=production, the auth rate
limits off, BCRYPT_COST, the log at warn); the peer hashes at the same BCRYPT_COST.

Then, for each round, load/run.sh --url ... --pid ... --json ... drives each server
through the scenarios (each run registers its own user and seeds its own store, item
and tag), the server that goes first alternating round by round so that the machine's
drift hits both alike. load/chart.py (in a venv made once, with matplotlib from PyPI)
turns the JSON results into:
  - a Markdown table, printed and written to DIR/compare.md: per scenario each side's
    median req/s, p50 and p99, and the req/s ratio (this service / Flask); the logins
    as 200s per second, with the 503s shed by the hashing pool apart; the login
    storm's read p99 at rest and in the storm, and their ratio, for both;
  - a PNG chart, DIR/compare.png: req/s and p99 per scenario, both sides side by side.
DIR also keeps every run's JSON (json/) and output (logs/), and meta.json.

Scenarios (default: health read me store tag write login login-storm): those of
load/run.sh that the peer implements, i.e. any of
  health read me store tag write login refresh login-storm

Options:
  -d, --duration SECS        seconds per scenario run (default 8)
  -c, --connections N        connections for the reads and writes (default 32)
  -t, --threads N            wrk threads (default 2)
      --login-connections N  connections of the login scenario (default 64: an impatient
                             crowd, more than the hashing can serve)
      --storm-connections N  connections of the logins during login-storm (default 32)
      --rounds N             rounds (default 2)
      --postgres [URL]       PostgreSQL: URL, else $LOAD_DATABASE_URL, else the URL printed
                             by scripts/postgres.sh; two fresh databases, dropped at exit
      --workers N            the peer's gunicorn workers (default: the cores, nproc)
      --memory               also run load/run.sh's memory phase (a 64-connection read
                             first) and report each side's peak resident memory (the
                             peer's: gunicorn's master and workers summed)
      --no-build             use the release binary as it is (no cargo build --release)
      --out DIR              where the results go (default: a new directory
                             stores-api-compare-<date> under the temp dir); printed at the end
  -h, --help                 this text

Environment: BCRYPT_COST (default 12), CARGO_TARGET_DIR (where the binary is built),
FLASK_VENV (the peer's venv, see load/flask-run.sh), CHART_VENV (the chart's venv,
default ~/.cache/stores-api/chart-venv), LOAD_RUST_LOG (this service's log filter,
default warn). Both servers are stopped, and the PostgreSQL databases dropped, at exit,
also on Ctrl-C.

Examples:
  bash load/compare.sh                                 # SQLite, 2 rounds, ~8 minutes
  bash load/compare.sh -d 4 --rounds 1                 # a quick look
  bash load/compare.sh --postgres --rounds 3           # on the local PostgreSQL 15
  bash load/compare.sh --no-build -d 5 health read me store tag --out /tmp/views
EOF
}

DURATION=8
CONNECTIONS=32
THREADS=2
LOGIN_CONNECTIONS=64
STORM_CONNECTIONS=32
ROUNDS=2
POSTGRES=""
PG_SERVER_URL="${LOAD_DATABASE_URL:-}"
WORKERS="$(nproc)"
MEMORY=""
BUILD=1
OUT=""
COST="${BCRYPT_COST:-12}"
SCENARIOS=()

need_value() { [ $# -gt 1 ] || { echo "compare: $1 needs a value (see --help)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -d|--duration) need_value "$@"; DURATION="$2"; shift 2 ;;
        -c|--connections) need_value "$@"; CONNECTIONS="$2"; shift 2 ;;
        -t|--threads) need_value "$@"; THREADS="$2"; shift 2 ;;
        --login-connections) need_value "$@"; LOGIN_CONNECTIONS="$2"; shift 2 ;;
        --storm-connections) need_value "$@"; STORM_CONNECTIONS="$2"; shift 2 ;;
        --rounds) need_value "$@"; ROUNDS="$2"; shift 2 ;;
        --postgres)
            POSTGRES=1
            if [ $# -gt 1 ] && [[ "$2" == postgres://* || "$2" == postgresql://* ]]; then
                PG_SERVER_URL="$2"; shift
            fi
            shift ;;
        --workers) need_value "$@"; WORKERS="$2"; shift 2 ;;
        --memory) MEMORY=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --out) need_value "$@"; OUT="$2"; shift 2 ;;
        -*) echo "compare: unknown option $1 (see --help)" >&2; exit 2 ;;
        *)
            case " $ALLOWED " in
                *" $1 "*) SCENARIOS+=("$1") ;;
                *) echo "compare: unknown scenario $1 (one of: $ALLOWED)" >&2; exit 2 ;;
            esac
            shift ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || read -r -a SCENARIOS <<<"$DEFAULT_SCENARIOS"
for value in "$DURATION" "$CONNECTIONS" "$THREADS" "$LOGIN_CONNECTIONS" "$STORM_CONNECTIONS" "$ROUNDS" "$WORKERS"; do
    case "$value" in ''|*[!0-9]*|0) echo "compare: $value is not a positive number" >&2; exit 2 ;; esac
done

log() { printf 'compare: %s\n' "$*" >&2; }

[ -n "$OUT" ] || OUT="${TMPDIR:-/tmp}/stores-api-compare-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT/json" "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
rm -f "$OUT"/json/round*.json

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    log "building the release binary (cargo build --release)"
    cargo build --release --bin stores-api >&2
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stores-api"
[ -x "$BIN" ] || { log "ERROR: no binary at $BIN"; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/stores-compare.XXXXXX")"
PIDS=()
PG_DBS=()
DRIVER=""
cleanup() {
    local pid db
    # The load/run.sh under way first (its own cleanup ends its run), then the servers.
    if [ -n "$DRIVER" ]; then kill "$DRIVER" 2>/dev/null || true; wait "$DRIVER" 2>/dev/null || true; fi
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
    for db in ${PG_DBS[@]+"${PG_DBS[@]}"}; do
        psql "$PG_SERVER_URL" -q -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A fresh database for each side: a SQLite file in the temp dir, or a PostgreSQL
# database (its URL: the server's with the database's name as path; on a loopback host
# without TLS, as this service connects there by default, so that both sides talk to
# PostgreSQL alike).
if [ -n "$POSTGRES" ]; then
    command -v psql >/dev/null || { log "ERROR: psql is needed with --postgres"; exit 1; }
    if [ -z "$PG_SERVER_URL" ]; then
        PG_SERVER_URL="$(bash "$ROOT/scripts/postgres.sh" | tail -n1)"
    fi
    BACKEND=postgresql
    new_database() {
        local db
        db="stores_compare_$1_$(random_hex 4)"
        psql "$PG_SERVER_URL" -q -c "CREATE DATABASE $db" >/dev/null
        PG_DBS+=("$db")
        python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
query = p.query
if p.hostname in ("localhost", "127.0.0.1", "::1") and "sslmode" not in query:
    query = "&".join(filter(None, [query, "sslmode=disable"]))
print(u.urlunsplit(p._replace(path="/" + sys.argv[2], query=query)))' "$PG_SERVER_URL" "$db"
    }
    # Not in a command substitution: PG_DBS must keep the names for the cleanup.
    new_database rust >"$TMP/rust-url"
    new_database flask >"$TMP/flask-url"
    RUST_DB="$(cat "$TMP/rust-url")"
    FLASK_DB_URL="$(cat "$TMP/flask-url")"
else
    BACKEND=sqlite
    RUST_DB="$TMP/stores-api.db"
    FLASK_DB_URL="$TMP/flask.db"
fi

# wait_for URL PID SECONDS NAME LOG: until URL answers 2xx, the process still alive.
wait_for() {
    local waited=0
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        sleep 0.1
        waited=$((waited + 1))
        if [ "$waited" -gt $(( $3 * 10 )) ] || ! kill -0 "$2" 2>/dev/null; then
            log "ERROR: $4 did not answer $1; its log:"
            tail -n 20 "$5" >&2
            exit 1
        fi
    done
}

# This service, as load/run.sh starts it.
RUST_PORT="$(free_port)"
KEY="$(random_hex 32)"
APP_ENV=production HOST=127.0.0.1 PORT="$RUST_PORT" DATABASE_URL="$RUST_DB" \
    METRICS_ADDR="127.0.0.1:$(free_port)" JWT_SECRET_KEY="$KEY" BCRYPT_COST="$COST" DATA_DIR="$TMP" \
    AUTH_RATE_LIMIT_PER_MINUTE=0 LOGIN_FAILURE_LIMIT=0 PASSWORD_HASH_PER_USER=0 \
    JWT_TOKEN_LOCATION=headers,cookies RUST_LOG="${LOAD_RUST_LOG:-warn}" \
    "$BIN" >"$OUT/logs/stores-api.log" 2>&1 &
RUST_PID="$!"
PIDS+=("$RUST_PID")
wait_for "http://127.0.0.1:$RUST_PORT/ready" "$RUST_PID" 60 stores-api "$OUT/logs/stores-api.log"
log "stores-api (pid $RUST_PID) ready on http://127.0.0.1:$RUST_PORT, $BACKEND"

# The peer; flask-run.sh execs gunicorn, so this PID becomes gunicorn's master. The
# first start prepares its venv (pip), hence the long wait.
FLASK_PORT="$(free_port)"
JWT_SECRET_KEY="$(random_hex 32)" PORT="$FLASK_PORT" FLASK_WORKERS="$WORKERS" BCRYPT_COST="$COST" \
    FLASK_DB="$FLASK_DB_URL" bash load/flask-run.sh >"$OUT/logs/flask.log" 2>&1 &
FLASK_PID="$!"
PIDS+=("$FLASK_PID")
wait_for "http://127.0.0.1:$FLASK_PORT/health" "$FLASK_PID" 600 "the Flask peer" "$OUT/logs/flask.log"
log "Flask peer (gunicorn pid $FLASK_PID, $WORKERS worker(s)) ready on http://127.0.0.1:$FLASK_PORT, $BACKEND"

python3 - "$OUT/meta.json" <<EOF
import json, sys
json.dump({
    "backend": "$BACKEND", "cores": $(nproc), "rounds": $ROUNDS, "duration_s": $DURATION,
    "connections": $CONNECTIONS, "threads": $THREADS, "login_connections": $LOGIN_CONNECTIONS,
    "storm_connections": $STORM_CONNECTIONS, "bcrypt_cost": $COST, "flask_workers": $WORKERS,
    "scenarios": "${SCENARIOS[*]}".split(), "date": "$(date -u +%Y-%m-%d)",
}, open(sys.argv[1], "w"), indent=2)
EOF

# CPU time (clock ticks) used so far by these processes and their children.
cpu_ticks() {
    local pid p kids total=0 ticks
    for pid in "$@"; do
        mapfile -t kids < <(pgrep -P "$pid" || true)
        for p in "$pid" ${kids[@]+"${kids[@]}"}; do
            ticks="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)"
            total=$(( total + ${ticks:-0} ))
        done
    done
    echo "$total"
}
# settle: waits (up to 60 s) until both servers are at rest: a side still serving the
# logins it queued would steal the other's cores. At rest: under 10% of a core over
# half a second, and GET /health within 100 ms, on both sides.
answers_fast() {
    local t
    t="$(curl -s -o /dev/null -m 5 -w '%{time_total}' "$1/health" || true)"
    awk -v t="${t:-9}" 'BEGIN { exit !(t < 0.1) }'
}
settle() {
    local before
    for _ in $(seq 1 120); do
        before="$(cpu_ticks "$RUST_PID" "$FLASK_PID")"
        sleep 0.5
        if [ $(( $(cpu_ticks "$RUST_PID" "$FLASK_PID") - before )) -le $(( $(getconf CLK_TCK) / 20 )) ] \
            && answers_fast "http://127.0.0.1:$RUST_PORT" && answers_fast "http://127.0.0.1:$FLASK_PORT"; then
            return 0
        fi
    done
    log "warning: the servers are still busy after 60 s; going on"
}

# drive NAME URL PID ROUND: one load/run.sh over the scenarios against one side.
drive() {
    local args=(--url "$2" --pid "$3" --json "$OUT/json/round$4-$1.json"
        -d "$DURATION" -c "$CONNECTIONS" -t "$THREADS")
    [ -n "$MEMORY" ] || args+=(--no-memory)
    settle
    log "round $4/$ROUNDS: $1 (${SCENARIOS[*]})"
    # In the background and waited for, so that a signal reaches the cleanup at once
    # rather than after this run.
    LOAD_LOGIN_CONNECTIONS="$LOGIN_CONNECTIONS" LOAD_STORM_CONNECTIONS="$STORM_CONNECTIONS" \
        LOAD_DB_CPU="$([ -z "$POSTGRES" ] || echo 1)" bash load/run.sh "${args[@]}" "${SCENARIOS[@]}" >"$OUT/logs/round$4-$1.txt" 2>&1 &
    DRIVER="$!"
    wait "$DRIVER" \
        || { log "ERROR: load/run.sh against $1 failed; its output:"; tail -n 20 "$OUT/logs/round$4-$1.txt" >&2; exit 1; }
    DRIVER=""
}
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        drive stores-api "http://127.0.0.1:$RUST_PORT" "$RUST_PID" "$r"
        drive flask "http://127.0.0.1:$FLASK_PORT" "$FLASK_PID" "$r"
    else
        drive flask "http://127.0.0.1:$FLASK_PORT" "$FLASK_PID" "$r"
        drive stores-api "http://127.0.0.1:$RUST_PORT" "$RUST_PID" "$r"
    fi
done

# The chart's venv, made once like the peer's; the marker records what was installed.
CHART_VENV="${CHART_VENV:-$HOME/.cache/stores-api/chart-venv}"
CHART_PACKAGES=("matplotlib==3.11.2")
if [ ! -x "$CHART_VENV/bin/python" ] || [ "$(cat "$CHART_VENV/.stores-api-packages" 2>/dev/null)" != "${CHART_PACKAGES[*]}" ]; then
    log "preparing the chart's venv at $CHART_VENV"
    [ -x "$CHART_VENV/bin/python" ] || python3 -m venv "$CHART_VENV"
    "$CHART_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${CHART_PACKAGES[@]}" >&2
    printf '%s\n' "${CHART_PACKAGES[*]}" >"$CHART_VENV/.stores-api-packages"
fi
"$CHART_VENV/bin/python" load/chart.py "$OUT"
log "results in $OUT: compare.md (the table), compare.png (the chart), json/, logs/"
