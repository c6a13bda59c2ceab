#!/usr/bin/env bash
# The load kit: starts the release server itself and runs named wrk scenarios.
# `bash load/run.sh --help` explains it; PERFORMANCE.md holds the figures it gave.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL_SCENARIOS="health read read-cookie me store tag write login refresh login-storm"

usage() {
    cat <<'EOF'
Usage: bash load/run.sh [options] [scenario ...]

Builds the release binary (cargo build --release), starts the server on a fresh SQLite
file in a temp dir (or on a fresh database of a PostgreSQL server), creates a user, a
store, an item and a tag of the store that the item carries, runs the scenarios with wrk
(installed with apt-get when missing) and prints one table: scenario | req/s | p50 |
p99 | errors (non-2xx/3xx + socket errors). Then: resident memory at idle and its peak
under a 64-connection read (run first, unless --no-memory), and the time from exec to
the first 200 of GET /ready. Each scenario starts once the server is at rest (its
processes under 10% of a core, GET /health within 100 ms; at most 30 s): a server still
hashing the logins it queued would otherwise slow the next scenario. login and
login-storm log in a second user of the kit's, so that their sessions never push out
(MAX_SESSIONS_PER_USER) the session whose token the reads use.

With --url it starts nothing and drives a server that is already running (this one
elsewhere, or another implementation of the same endpoints, such as a Flask-JWT-Extended
one): it registers a user of its own (load-<random>), logs in, creates a store, an
item and a tag through the API, and runs the same scenarios; memory is reported only
with --pid (that process and its children, such as gunicorn's workers).

Scenarios (default: all, in this order):
  health       GET /health
  read         GET /item/{id} with a valid access token
  read-cookie  read with the token in the browser-mode cookie instead of the header
               (the kit's server reads both; with --url the server must read cookies)
  me           GET /me with a valid access token
  store        GET /store/{id} with a valid access token (the store, its item and tag)
  tag          GET /tag/{id} with a valid access token (the tag, its store and item)
  write        PUT /item/{id} {"price": 12.5} with a valid access token
  login        POST /login (bcrypt at BCRYPT_COST), LOAD_LOGIN_CONNECTIONS connections
  refresh      POST /refresh, each thread chaining its session's rotated refresh tokens
  login-storm  read at rest, then read again while logins flood (32 connections):
               read p99 at rest and under the storm, and the logins' 200/503/429 counts

Options:
  -d, --duration SECS     seconds per scenario run (default 8; env LOAD_DURATION)
  -c, --connections N     connections for health/read/write (default 32; LOAD_CONNECTIONS)
  -t, --threads N         wrk threads (default 2; LOAD_THREADS)
      --postgres [URL]    use PostgreSQL: URL, else $LOAD_DATABASE_URL, else the URL printed
                          by scripts/postgres.sh. A fresh database is created and dropped.
      --instances N       1 (default) or 2: N servers on one PostgreSQL database, each
                          driven at once by its own wrk with connections/N; req/s summed,
                          p50 averaged, p99 the worst, errors summed
      --algorithm ALG     JWT_ALGORITHM of the kit's server: HS256 (default), EdDSA, ES256 or
                          RS256 (public-key keys are made by the server, in its database)
      --no-build          use target/release/stores-api as it is
      --url BASE          drive the server at BASE (http://host:port) instead of starting one
      --pid PID           with --url: the server's process, for the memory lines
      --metrics-off       also start a second server on the same database with METRICS_ADDR
                          empty, and run read against it right after each read against
                          the kit's server (metrics on, on a free port): reports
                          read/read-without-metrics per round and their median (one
                          instance only; give --rounds for more than one pair)
      --rounds N          run health and read (and read-cookie, me, store, tag when asked
                          for) N times, alternated, and report each round's read/health
                          (and read-cookie/read, me/read, store/read, tag/read) and their
                          median (default 1; LOAD_ROUNDS). The machine's noise then hits
                          the scenarios alike.
      --no-memory         skip the memory phase (the 64-connection read run first)
      --json FILE         also write the results to FILE as JSON: every row (scenario,
                          req/s, p50 and p99 in ms, non-2xx, socket errors, requests), the
                          logins' status counts and 200s per second, the storm's read p99
                          at rest and in the storm, the ratios, memory and start-up when
                          measured, and the settings (backend, cores, duration, ...)
  -h, --help              this text

Environment: BCRYPT_COST (default 12, the production default), LOAD_LOGIN_CONNECTIONS
(default 4), LOAD_STORM_CONNECTIONS (default 32), LOAD_RUST_LOG (server log filter,
default warn: the per-request access log is info), LOAD_DB_CPU=1 (with --url: also count
the local PostgreSQL server's CPU per request, as --postgres does). The auth rate limits are off
(AUTH_RATE_LIMIT_PER_MINUTE=0, LOGIN_FAILURE_LIMIT=0, PASSWORD_HASH_PER_USER=0): every
request comes from 127.0.0.1 and logs one of the kit's users in, so with them on the kit
would measure 429s, not logins.

Examples:
  bash load/run.sh                                   # everything on SQLite, ~2 minutes
  bash load/run.sh -d 5 health read                  # two scenarios
  bash load/run.sh --postgres                        # on the local PostgreSQL 15
  bash load/run.sh --postgres --instances 2 health read write
  bash load/run.sh --postgres --instances 2 -d 5 login-storm   # storms on two instances
  bash load/run.sh --rounds 3 health read            # the throughput ratio, 3 rounds
  bash load/run.sh --rounds 3 -d 5 health read read-cookie   # cookie against header
  bash load/run.sh --rounds 3 -d 5 health read me store tag   # the views against read
  bash load/run.sh --algorithm EdDSA --rounds 3 -d 5 health read   # public-key tokens
  bash load/run.sh --metrics-off --rounds 5 -d 5 health read       # the metrics' cost
  bash load/run.sh --url http://127.0.0.1:5000 health read write   # another server
  bash load/run.sh --no-memory --json /tmp/load.json -d 5 health read  # for a script
  bash load/compare.sh --help                        # side by side with the Flask peer
EOF
}

DURATION="${LOAD_DURATION:-8}"
CONNECTIONS="${LOAD_CONNECTIONS:-32}"
THREADS="${LOAD_THREADS:-2}"
LOGIN_CONNECTIONS="${LOAD_LOGIN_CONNECTIONS:-4}"
STORM_CONNECTIONS="${LOAD_STORM_CONNECTIONS:-32}"
COST="${BCRYPT_COST:-12}"
SERVER_RUST_LOG="${LOAD_RUST_LOG:-warn}"
POSTGRES=""
PG_SERVER_URL="${LOAD_DATABASE_URL:-}"
INSTANCES=1
BUILD=1
TARGET_URL=""
TARGET_PID=""
ALGORITHM="${LOAD_ALGORITHM:-HS256}"
ROUNDS="${LOAD_ROUNDS:-1}"
METRICS_OFF=""
MEMORY=1
JSON_OUT=""
SCENARIOS=()

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -d|--duration) DURATION="$2"; shift 2 ;;
        -c|--connections) CONNECTIONS="$2"; shift 2 ;;
        -t|--threads) THREADS="$2"; shift 2 ;;
        --postgres)
            POSTGRES=1
            if [ $# -gt 1 ] && [[ "$2" == postgres://* || "$2" == postgresql://* ]]; then
                PG_SERVER_URL="$2"; shift
            fi
            shift ;;
        --instances) INSTANCES="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --algorithm) ALGORITHM="$2"; shift 2 ;;
        --url) TARGET_URL="${2%/}"; shift 2 ;;
        --pid) TARGET_PID="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --metrics-off) METRICS_OFF=1; shift ;;
        --no-memory) MEMORY=""; shift ;;
        --json) JSON_OUT="$2"; shift 2 ;;
        -*) echo "load: unknown option $1 (see --help)" >&2; exit 2 ;;
        *)
            case " $ALL_SCENARIOS " in
                *" $1 "*) SCENARIOS+=("$1") ;;
                *) echo "load: unknown scenario $1 (one of: $ALL_SCENARIOS)" >&2; exit 2 ;;
            esac
            shift ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || read -r -a SCENARIOS <<<"$ALL_SCENARIOS"
case "$INSTANCES" in 1|2) ;; *) echo "load: --instances is 1 or 2" >&2; exit 2 ;; esac
if [ "$INSTANCES" = 2 ] && [ -z "$POSTGRES" ]; then
    echo "load: --instances 2 needs --postgres (SQLite is for one instance)" >&2; exit 2
fi
case "$ROUNDS" in ''|*[!0-9]*|0) echo "load: --rounds is a positive number" >&2; exit 2 ;; esac
if [ -n "$TARGET_URL" ]; then
    case "$TARGET_URL" in http://*|https://*) ;; *) echo "load: --url is http://host:port" >&2; exit 2 ;; esac
    if [ -n "$POSTGRES" ] || [ "$INSTANCES" != 1 ]; then
        echo "load: --url drives a running server: no --postgres or --instances" >&2; exit 2
    fi
    BUILD=0
fi
if [ -n "$METRICS_OFF" ] && { [ -n "$TARGET_URL" ] || [ "$INSTANCES" != 1 ]; }; then
    echo "load: --metrics-off starts its own second server: no --url or --instances" >&2; exit 2
fi
if [ -n "$TARGET_PID" ] && [ -z "$TARGET_URL" ]; then
    echo "load: --pid goes with --url" >&2; exit 2
fi

log() { printf 'load: %s\n' "$*" >&2; }
case "$JSON_OUT" in ''|/*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac

if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (apt-get install -y wrk)"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null || { log "ERROR: $tool is needed"; exit 1; }
done

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    log "building the release binary (cargo build --release)"
    cargo build --release --bin stores-api >&2
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/stores-api"
if [ -z "$TARGET_URL" ] && [ ! -x "$BIN" ]; then log "ERROR: no binary at $BIN"; exit 1; fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/stores-load.XXXXXX")"
PIDS=()
PG_DB=""
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_DB" ]; then
        psql "$PG_SERVER_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$TARGET_URL" ]; then
    BACKEND="the server at $TARGET_URL"
elif [ -n "$POSTGRES" ]; then
    if [ -z "$PG_SERVER_URL" ]; then
        PG_SERVER_URL="$(bash "$ROOT/scripts/postgres.sh" | tail -n1)"
    fi
    PG_DB="stores_load_$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
    psql "$PG_SERVER_URL" -q -c "CREATE DATABASE $PG_DB" >/dev/null
    DATABASE_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_SERVER_URL" "$PG_DB")"
    BACKEND=postgresql
else
    DATABASE_URL="$TMP/load.db"
    BACKEND=sqlite
fi
KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

now_ns() { date +%s%N; }

# start_server N [METRICS_ADDR]: instance N on a free port, its metrics on a free port
# of their own unless METRICS_ADDR is given (empty: none); sets TARGETS[N] and
# STARTUP_MS[N].
TARGETS=()
STARTUP_MS=()
start_server() {
    local n="$1" port start waited=0 metrics
    port="$(free_port)"
    if [ $# -gt 1 ]; then metrics="$2"; else metrics="127.0.0.1:$(free_port)"; fi
    start="$(now_ns)"
    APP_ENV=production HOST=127.0.0.1 PORT="$port" DATABASE_URL="$DATABASE_URL" METRICS_ADDR="$metrics" \
        JWT_SECRET_KEY="$KEY" BCRYPT_COST="$COST" DATA_DIR="$TMP" \
        AUTH_RATE_LIMIT_PER_MINUTE=0 LOGIN_FAILURE_LIMIT=0 PASSWORD_HASH_PER_USER=0 \
        JWT_TOKEN_LOCATION=headers,cookies JWT_ALGORITHM="$ALGORITHM" JWT_KEY_ENCRYPTION_KEY="$KEY" \
        RUST_LOG="$SERVER_RUST_LOG" \
        "$BIN" >"$TMP/server-$n.log" 2>&1 &
    PIDS+=("$!")
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null; do
        sleep 0.01
        waited=$((waited + 1))
        if [ "$waited" -gt 3000 ] || ! kill -0 "${PIDS[$n]}" 2>/dev/null; then
            log "ERROR: instance $n did not become ready; its log:"
            tail -n 20 "$TMP/server-$n.log" >&2
            exit 1
        fi
    done
    TARGETS[n]="http://127.0.0.1:$port"
    STARTUP_MS[n]=$(( ($(now_ns) - start) / 1000000 ))
}

if [ -n "$TARGET_URL" ]; then
    TARGETS=("$TARGET_URL")
    curl -fsS -o /dev/null "$TARGET_URL/health" 2>/dev/null \
        || log "warning: GET $TARGET_URL/health did not answer 2xx; going on"
    log "$BACKEND (started elsewhere); seeding"
else
    for n in $(seq 0 $((INSTANCES - 1))); do
        start_server "$n"
    done
    log "$BACKEND, $INSTANCES instance(s) ready in ${STARTUP_MS[*]} ms; seeding"
fi
if [ -n "$METRICS_OFF" ]; then
    # Index 1, after the kit's instance: the same database and key, no metrics listener.
    start_server 1 ""
    OFF_TARGET="${TARGETS[1]}"
    TARGETS=("${TARGETS[0]}")
    log "second server without metrics (METRICS_ADDR empty) at $OFF_TARGET"
fi
BASE="${TARGETS[0]}"
COST_NOTE="BCRYPT_COST=$COST"
[ -z "$TARGET_URL" ] || COST_NOTE="the server's own password hashing"

json_field() {
    python3 -c 'import json, sys
try:
    print(json.load(sys.stdin)[sys.argv[1]])
except (ValueError, KeyError):
    sys.exit("load: ERROR: the answer has no \"%s\"" % sys.argv[1])' "$1"
}
# login FIELD: logs the kit's user in and prints FIELD of the answer. A server still
# hashing an earlier run's logins sheds new ones (503/429): wait and retry, up to 60 s.
login() {
    local body tries=0
    until body="$(post_json /login "$login_body" 2>/dev/null)"; do
        tries=$((tries + 1))
        [ "$tries" -lt 120 ] || { log "ERROR: POST $BASE/login kept failing"; return 1; }
        sleep 0.5
    done
    printf '%s' "$body" | json_field "$1"
}
post_json() { curl -fsS -X POST "$BASE$1" -H 'Content-Type: application/json' "${@:3}" -d "$2"; }

# Names of its own (user, store), so that a server that outlives the run can be driven again.
USERNAME="load-$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')"
PASSWORD="load-password-1"
# The login and login-storm scenarios log in a user of their own: every login opens a
# session, and past the server's MAX_SESSIONS_PER_USER (100) the oldest sessions end,
# the reads' own among them, which would turn the reads that follow into 401s.
LOGIN_USERNAME="$USERNAME-logins"
for name in "$USERNAME" "$LOGIN_USERNAME"; do
    post_json /register "{\"username\": \"$name\", \"password\": \"$PASSWORD\"}" >/dev/null \
        || { log "ERROR: POST $BASE/register failed; the kit needs /register, /login, /store, /item, /store/{id}/tag, /item/{id}/tag/{tag_id}"; exit 1; }
done
login_body="{\"username\": \"$USERNAME\", \"password\": \"$PASSWORD\"}"
ACCESS="$(login access_token)"
STORE_ID="$(post_json /store "{\"name\": \"Store of $USERNAME\"}" -H "Authorization: Bearer $ACCESS" | json_field id)"
ITEM_ID="$(post_json /item "{\"name\": \"Load item\", \"price\": 10.5, \"store_id\": $STORE_ID}" \
    -H "Authorization: Bearer $ACCESS" | json_field id)"
TAG_ID="$(post_json "/store/$STORE_ID/tag" '{"name": "tools"}' -H "Authorization: Bearer $ACCESS" | json_field id)"
curl -fsS -o /dev/null -X POST "$BASE/item/$ITEM_ID/tag/$TAG_ID" -H "Authorization: Bearer $ACCESS"
curl -fsS -o /dev/null "$BASE/item/$ITEM_ID" -H "Authorization: Bearer $ACCESS"

ROWS=()
# The same rows for --json, space-separated: name req/s p50_ms p99_ms non-2xx socket
# requests, then the server's and PostgreSQL's CPU microseconds per request ("-": not
# measured).
RAW_ROWS=()
CPU_ROWS=()
DB_CPU="${LOAD_DB_CPU:-}"
[ -z "$POSTGRES" ] || DB_CPU=1
NOTES=()

# run_wrk NAME CONNECTIONS THREADS SCRIPT PATH [wrk args...]: one wrk per instance, at
# once, connections split between them; appends a row and leaves the raw output in
# $TMP/NAME.N.out (N: the instance).
run_wrk() {
    local name="$1" conns="$2" threads="$3" script="$4" path="$5"
    shift 5
    local per=$(( conns / INSTANCES )) n
    [ "$per" -ge 1 ] || per=1
    local t=$(( threads < per ? threads : per ))
    local wrk_pids=() cpu_before db_before
    cpu_before="$(cpu_ticks ${WATCH_PIDS[@]+"${WATCH_PIDS[@]}"})"
    db_before="$(db_ticks)"
    for n in $(seq 0 $((INSTANCES - 1))); do
        LOAD_TOKENS_FILE="$TMP/refresh-tokens-$n" \
            wrk -t"$t" -c"$per" -d"${DURATION}s" --timeout 10s -s "load/$script" "$@" \
            "${WRK_TARGET:-${TARGETS[$n]}}$path" >"$TMP/$name.$n.out" 2>&1 &
        wrk_pids+=("$!")
    done
    for n in "${wrk_pids[@]}"; do wait "$n"; done
    local cpu_used db_used
    cpu_used=$(( $(cpu_ticks ${WATCH_PIDS[@]+"${WATCH_PIDS[@]}"}) - cpu_before ))
    db_used=$(( $(db_ticks) - db_before ))
    local row
    row="$(cat "$TMP/$name".*.out | awk -v name="$name" '
        /^RESULT/ { rps += $2; p50 += $3; if ($4 > p99) p99 = $4; st += $5; so += $6; req += $7; k++ }
        END {
            if (k == 0) { printf "%s|-|-|-|wrk failed|%s - - - - - -\n", name, name; exit }
            # No answer within the run (a server too busy): no latency to show.
            if (req == 0) {
                printf "%s|0|-|-|%d (%d non-2xx, %d socket)|%s 0 - - %d %d 0\n",
                    name, st + so, st, so, name, st, so
                exit
            }
            printf "%s|%.0f|%.2f ms|%.2f ms|%d (%d non-2xx, %d socket)|%s %.1f %.3f %.3f %d %d %d\n",
                name, rps, p50 / k, p99, st + so, st, so, name, rps, p50 / k, p99, st, so, req
        }')"
    ROWS+=("${row%|*}")
    local raw="${row##*|}" cpu
    # CPU time per answered request: what one core serves of this scenario, without wrk.
    cpu="$(awk -v raw="$raw" -v server="$cpu_used" -v db="$db_used" -v hz="$TICKS_PER_S" \
        -v watched="${#WATCH_PIDS[@]}" -v pg="$DB_CPU" 'BEGIN {
            split(raw, f, " "); req = f[7] + 0
            if (req == 0 || watched == 0) { s = "-" } else { s = sprintf("%.1f", server / hz / req * 1e6) }
            if (req == 0 || pg == "") { d = "-" } else { d = sprintf("%.1f", db / hz / req * 1e6) }
            print s, d }')"
    RAW_ROWS+=("$raw $cpu")
    CPU_ROWS+=("$name $cpu")
}

# The value of column N (1-based) of the row named NAME.
row_field() {
    local r
    for r in "${ROWS[@]}"; do
        if [ "${r%%|*}" = "$1" ]; then printf '%s\n' "$r" | cut -d'|' -f"$2"; return; fi
    done
}

auth=(-H "Authorization: Bearer $ACCESS")
# As a browser sends it: the token's cookie among others (a GET needs no CSRF header).
cookie=(-H "Cookie: _ga=GA1.1.1234567890.1700000000; access_token_cookie=$ACCESS; csrf_access_token=6f1c2d0e-7a4b-4c59-9d7e-2b1f0a3c4d5e")

# run_get SCENARIO ROW: one of the GET scenarios, its row named ROW.
run_get() {
    local get=(run_wrk "$2" "$CONNECTIONS" "$THREADS" get.lua)
    case "$1" in
        health) "${get[@]}" /health ;;
        read) "${get[@]}" "/item/$ITEM_ID" "${auth[@]}" ;;
        read-cookie) "${get[@]}" "/item/$ITEM_ID" "${cookie[@]}" ;;
        me) "${get[@]}" /me "${auth[@]}" ;;
        store) "${get[@]}" "/store/$STORE_ID" "${auth[@]}" ;;
        tag) "${get[@]}" "/tag/$TAG_ID" "${auth[@]}" ;;
    esac
}

# The logins' status counts of the runs named NAME, summed over the instances:
# 200 ok, 503 shed, 429 rate limited, other, then the 200s and the 503s per second.
status_counts() {
    grep -h "^STATUS" "$TMP/$1".*.out | awk '
        { ok += $2; s += $3; l += $4; o += $5; if ($6 > 0) { rate += $2 / $6; shed += $3 / $6 } }
        END { printf "%d %d %d %d %.1f %.1f\n", ok, s, l, o, rate, shed }'
}
status_line() {
    local c
    read -r -a c <<<"$(status_counts "$1")"
    printf '%d ok (%s/s), %d shed with 503, %d rate limited with 429, %d other' \
        "${c[0]}" "${c[4]}" "${c[1]}" "${c[2]}" "${c[3]}"
}

# pct A B: B as a percentage of A, one decimal; nothing when A is 0 or not a number.
pct() {
    python3 -c 'import sys
try:
    print(round(100 * float(sys.argv[2]) / float(sys.argv[1]), 1))
except (ValueError, ZeroDivisionError):
    pass' "$1" "$2"
}
median() { python3 -c 'import statistics, sys; print(round(statistics.median(float(a) for a in sys.argv[1:]), 1))' "$@"; }

# Ratios by name ("read/health", "me/read", ...): their values, one per round.
declare -A RATIOS=()
add_ratio() { [ -z "$2" ] || RATIOS["$1"]+="$2 "; }
# The GET scenarios reported against read.
RELATIVE="read-cookie me store tag"
METRICS_RATIO="read (metrics on) / read-metrics-off"

# Memory of a process and its children (gunicorn's workers, for one): KEY (VmRSS or
# VmHWM) in MB, summed.
mem() {
    local pid kb total=0 kids=()
    mapfile -t kids < <(pgrep -P "$1" || true)
    for pid in "$1" ${kids[@]+"${kids[@]}"}; do
        kb="$(awk -v k="$2:" '$1 == k { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
        total=$(( total + ${kb:-0} ))
    done
    awk -v kb="$total" 'BEGIN { printf "%.1f\n", kb / 1024 }'
}
# CPU time (clock ticks) used so far by the local PostgreSQL server's processes, when
# the run measures them (--postgres, or LOAD_DB_CPU=1 for a server driven with --url).
db_ticks() {
    [ -n "$DB_CPU" ] || { echo 0; return; }
    local pids
    mapfile -t pids < <(pgrep -x postgres || true)
    [ ${#pids[@]} -gt 0 ] || { echo 0; return; }
    cpu_ticks_of "${pids[@]}"
}
# The ticks of exactly these processes: utime + stime, fields 14 and 15 of their stat,
# counted after the command name's ")".
cpu_ticks_of() {
    local p total=0 ticks
    for p in "$@"; do
        ticks="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true)"
        total=$(( total + ${ticks:-0} ))
    done
    echo "$total"
}
# CPU time (clock ticks) used so far by these processes and their children.
cpu_ticks() {
    local pid kids total=0 ticks
    for pid in "$@"; do
        mapfile -t kids < <(pgrep -P "$pid" || true)
        ticks="$(cpu_ticks_of "$pid" ${kids[@]+"${kids[@]}"})"
        total=$(( total + ticks ))
    done
    echo "$total"
}
# settle: waits (up to 30 s) until the server is at rest, so that a scenario does not
# measure the previous one's tail: logins that a server queued are still hashed after
# wrk has gone (a sync Flask worker serves every queued request first, even while it
# waits on its database). At rest: its processes and their children use under 10% of
# a core over half a second (when there are processes to watch), and GET /health
# answers within 100 ms.
WATCH_PIDS=()
if [ -n "$TARGET_URL" ]; then WATCH_PIDS=(${TARGET_PID:+"$TARGET_PID"}); else WATCH_PIDS=("${PIDS[@]}"); fi
TICKS_PER_S="$(getconf CLK_TCK)"
at_rest() {
    local before answer
    if [ ${#WATCH_PIDS[@]} -gt 0 ]; then
        before="$(cpu_ticks "${WATCH_PIDS[@]}")"
        sleep 0.5
        [ $(( $(cpu_ticks "${WATCH_PIDS[@]}") - before )) -le $(( TICKS_PER_S / 20 )) ] || return 1
    fi
    answer="$(curl -s -o /dev/null -m 5 -w '%{time_total}' "$BASE/health" || true)"
    awk -v t="${answer:-9}" 'BEGIN { exit !(t < 0.1) }'
}
settle() {
    local tries
    for tries in $(seq 1 60); do
        at_rest && break
        [ ${#WATCH_PIDS[@]} -gt 0 ] || sleep 0.5
    done
    [ "$tries" -lt 3 ] || log "waited $(( tries / 2 )) s for the server to come to rest"
    [ "$tries" -lt 60 ] || log "warning: the server is still busy; going on"
}

# Memory: at idle (started, seeded, nothing running), then the peak under 64 connections
# of token-checked reads, before any other scenario can set the high-water mark.
# With --url, only a --pid on this machine can be measured.
MEM_PIDS=()
if [ -n "$MEMORY" ]; then
    if [ -n "$TARGET_URL" ]; then MEM_PIDS=(${TARGET_PID:+"$TARGET_PID"}); else MEM_PIDS=("${PIDS[@]}"); fi
fi
rss_idle=()
rss_peak=()
if [ -n "$MEMORY" ]; then
    settle
    for pid in ${MEM_PIDS[@]+"${MEM_PIDS[@]}"}; do rss_idle+=("$(mem "$pid" VmRSS)"); done
    log "memory: 64-connection read (${DURATION}s)"
    run_wrk read-64 64 "$THREADS" get.lua "/item/$ITEM_ID" "${auth[@]}"
    for pid in ${MEM_PIDS[@]+"${MEM_PIDS[@]}"}; do rss_peak+=("$(mem "$pid" VmHWM)"); done
fi

# read against the server without metrics, the pair's order alternating by round so
# that a drift of the machine hits both alike.
read_pair() {
    local r="$1"
    local off=(run_wrk "read-metrics-off#$r" "$CONNECTIONS" "$THREADS" get.lua "/item/$ITEM_ID" "${auth[@]}")
    if [ $((r % 2)) = 0 ]; then WRK_TARGET="$OFF_TARGET" "${off[@]}"; fi
    run_get read "read#$r"
    if [ $((r % 2)) = 1 ]; then WRK_TARGET="$OFF_TARGET" "${off[@]}"; fi
    add_ratio "$METRICS_RATIO" "$(pct "$(row_field "read-metrics-off#$r" 2)" "$(row_field "read#$r" 2)")"
}
# --rounds N: health, read and the scenarios reported against read, alternated N times,
# before the other scenarios.
if [ "$ROUNDS" -gt 1 ] || [ -n "$METRICS_OFF" ]; then
    rest=()
    relative=()
    for scenario in "${SCENARIOS[@]}"; do
        case " health read $RELATIVE " in
            *" $scenario "*) [ "$scenario" = health ] || [ "$scenario" = read ] || relative+=("$scenario") ;;
            *) rest+=("$scenario") ;;
        esac
    done
    for r in $(seq 1 "$ROUNDS"); do
        settle
        log "round $r/$ROUNDS: health read ${relative[*]} (${DURATION}s each)"
        run_get health "health#$r"
        if [ -n "$METRICS_OFF" ]; then
            read_pair "$r"
        else
            run_get read "read#$r"
        fi
        add_ratio read/health "$(pct "$(row_field "health#$r" 2)" "$(row_field "read#$r" 2)")"
        for scenario in ${relative[@]+"${relative[@]}"}; do
            run_get "$scenario" "$scenario#$r"
            add_ratio "$scenario/read" "$(pct "$(row_field "read#$r" 2)" "$(row_field "$scenario#$r" 2)")"
        done
    done
    SCENARIOS=(${rest[@]+"${rest[@]}"})
fi

STORM_P99=""
for scenario in ${SCENARIOS[@]+"${SCENARIOS[@]}"}; do
    settle
    log "scenario $scenario (${DURATION}s)"
    case "$scenario" in
        health|read|read-cookie|me|store|tag) run_get "$scenario" "$scenario" ;;
        write) run_wrk write "$CONNECTIONS" "$THREADS" write.lua "/item/$ITEM_ID" "${auth[@]}" ;;
        login)
            LOAD_USERNAME="$LOGIN_USERNAME" LOAD_PASSWORD="$PASSWORD" \
                run_wrk login "$LOGIN_CONNECTIONS" "$THREADS" login.lua /login
            NOTES+=("login: $(status_line login) ($COST_NOTE)") ;;
        refresh)
            # One session per chain, one connection per wrk thread, so that each chain
            # presents its tokens in order; instance n gets the sessions of file n.
            chains=$(( THREADS * 2 > 4 ? THREADS * 2 : 4 ))
            for n in $(seq 0 $((INSTANCES - 1))); do
                : >"$TMP/refresh-tokens-$n"
                for _ in $(seq 1 $(( chains / INSTANCES ))); do
                    login refresh_token >>"$TMP/refresh-tokens-$n"
                done
            done
            run_wrk refresh "$chains" "$chains" refresh.lua /refresh ;;
        login-storm)
            run_get read read-at-rest
            log "login storm: $STORM_CONNECTIONS connections of logins during the read"
            storm_pids=()
            for n in $(seq 0 $((INSTANCES - 1))); do
                LOAD_USERNAME="$LOGIN_USERNAME" LOAD_PASSWORD="$PASSWORD" \
                    wrk -t1 -c"$(( STORM_CONNECTIONS / INSTANCES ))" -d"$((DURATION + 2))s" --timeout 10s \
                    -s load/login.lua "${TARGETS[$n]}/login" >"$TMP/storm.$n.out" 2>&1 &
                storm_pids+=("$!")
            done
            sleep 1  # let the hashing pool fill before measuring
            run_get read read-in-storm
            for n in "${storm_pids[@]}"; do wait "$n"; done
            at_rest="$(row_field read-at-rest 4)"
            in_storm="$(row_field read-in-storm 4)"
            STORM_P99="${at_rest% ms} ${in_storm% ms}"
            NOTES+=("login-storm: read p99 ${at_rest} at rest, ${in_storm} in the storm ($(python3 -c '
import sys
try:
    print("%.1fx" % (float(sys.argv[2]) / float(sys.argv[1])))
except (ValueError, ZeroDivisionError):
    print("no read answered in one of the two runs")' "${at_rest% ms}" "${in_storm% ms}")); storm logins: $(status_line storm)") ;;
    esac
done

if [ -n "$(row_field health 2)" ] && [ -n "$(row_field read 2)" ]; then
    add_ratio read/health "$(pct "$(row_field health 2)" "$(row_field read 2)")"
fi
for scenario in $RELATIVE; do
    if [ -n "$(row_field read 2)" ] && [ -n "$(row_field "$scenario" 2)" ]; then
        add_ratio "$scenario/read" "$(pct "$(row_field read 2)" "$(row_field "$scenario" 2)")"
    fi
done

printf '\nstores-api load kit: %s, %s instance(s), %ss per run, %s connections, %s wrk threads, %s, %s, %s cores\n\n' \
    "$BACKEND" "$INSTANCES" "$DURATION" "$CONNECTIONS" "$THREADS" "$COST_NOTE" "JWT_ALGORITHM=$ALGORITHM" "$(nproc)"
{
    echo "scenario|req/s|p50|p99|errors"
    printf '%s\n' "${ROWS[@]}"
} | column -t -s '|' -o ' | '
echo
for name in read/health read-cookie/read me/read store/read tag/read "$METRICS_RATIO"; do
    [ -n "${RATIOS[$name]:-}" ] || continue
    read -r -a values <<<"${RATIOS[$name]}"
    if [ "$ROUNDS" -gt 1 ] || [ -n "$METRICS_OFF" ]; then
        printf '%s by round: %s%%; median %s%%\n' "$name" "$(printf '%s%%, ' "${values[@]}" | sed 's/%, $//')" \
            "$(median "${values[@]}")"
    else
        printf '%s: %s%%\n' "$name" "${values[0]}"
    fi
done
for note in ${NOTES[@]+"${NOTES[@]}"}; do printf '%s\n' "$note"; done
if [ ${#WATCH_PIDS[@]} -gt 0 ]; then
    echo
    echo "CPU time per answered request (utime + stime over the run; wrk not counted):"
    {
        echo "scenario|server µs|PostgreSQL µs|requests per core-second"
        printf '%s\n' "${CPU_ROWS[@]}" | awk '{
            total = ($2 == "-" ? 0 : $2) + ($3 == "-" ? 0 : $3)
            printf "%s|%s|%s|%s\n", $1, $2, $3, (total > 0 ? sprintf("%.0f", 1e6 / total) : "-") }'
    } | column -t -s '|' -o ' | '
fi
if [ -z "$MEMORY" ]; then
    echo "memory: not measured (--no-memory)"
elif [ -n "$TARGET_URL" ]; then
    if [ -n "$TARGET_PID" ] && [ -n "${rss_idle[0]:-}" ]; then
        printf 'pid %s and its children: RSS before the run %s MB, peak (VmHWM, the processes'"'"' lifetime, summed) %s MB\n' \
            "$TARGET_PID" "${rss_idle[0]}" "${rss_peak[0]}"
    else
        echo "memory: not measured (give --pid for a server on this machine)"
    fi
fi
if [ -z "$TARGET_URL" ]; then
    for n in $(seq 0 $((INSTANCES - 1))); do
        memory_part=""
        if [ -n "$MEMORY" ]; then
            memory_part="RSS idle ${rss_idle[$n]} MB, peak (VmHWM) after 64 connections ${rss_peak[$n]} MB, "
        fi
        printf 'instance %s: %sexec to /ready 200: %s ms (%s)\n' "$n" "$memory_part" "${STARTUP_MS[$n]}" \
            "$([ "$n" = 0 ] && echo "fresh database, migrations included" || echo "database already migrated")"
    done
fi

if [ -n "$JSON_OUT" ]; then
    {
        printf 'row\t%s\n' "${RAW_ROWS[@]}"
        for name in login storm; do
            if compgen -G "$TMP/$name.*.out" >/dev/null; then
                printf 'status\t%s %s\n' "$name" "$(status_counts "$name")"
            fi
        done
        for name in "${!RATIOS[@]}"; do printf 'ratio\t%s\t%s\n' "$name" "${RATIOS[$name]}"; done
        [ -z "$STORM_P99" ] || printf 'storm\t%s\n' "$STORM_P99"
        if [ -n "$MEMORY" ]; then
            for i in "${!rss_peak[@]}"; do
                printf 'memory\t%s %s %s %s\n' "$i" "${MEM_PIDS[$i]}" "${rss_idle[$i]}" "${rss_peak[$i]}"
            done
        fi
        if [ -z "$TARGET_URL" ]; then
            for n in $(seq 0 $((INSTANCES - 1))); do printf 'startup\t%s %s\n' "$n" "${STARTUP_MS[$n]}"; done
        fi
    } >"$TMP/results.tsv"
    python3 - "$TMP/results.tsv" "$JSON_OUT" \
        url="$TARGET_URL" backend="$([ -n "$TARGET_URL" ] || echo "$BACKEND")" instances="$INSTANCES" \
        cores="$(nproc)" duration_s="$DURATION" connections="$CONNECTIONS" threads="$THREADS" \
        login_connections="$LOGIN_CONNECTIONS" storm_connections="$STORM_CONNECTIONS" rounds="$ROUNDS" \
        bcrypt_cost="$([ -n "$TARGET_URL" ] || echo "$COST")" \
        jwt_algorithm="$([ -n "$TARGET_URL" ] || echo "$ALGORITHM")" <<'PY'
import datetime, json, statistics, sys


def num(text):
    """A number of the kit's output; "-" (wrk failed) and "" (not applicable) are null."""
    if text in ("-", ""):
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


result = {"kit": "stores-api load kit",
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
          .replace("+00:00", "Z")}
for setting in sys.argv[3:]:
    key, _, value = setting.partition("=")
    result[key] = num(value)
result.update(rows=[], logins={}, login_storm=None, ratios={}, memory=None, startup_ms=None)
for line in open(sys.argv[1]):
    kind, _, rest = line.rstrip("\n").partition("\t")
    if kind == "row":
        f = rest.split()
        result["rows"].append(dict(zip(
            ("scenario", "req_per_s", "p50_ms", "p99_ms", "non_2xx", "socket_errors", "requests",
             "server_cpu_us_per_req", "db_cpu_us_per_req"),
            [f[0]] + [num(x) for x in f[1:]])))
    elif kind == "status":
        f = rest.split()
        counts = dict(zip(("ok", "shed_503", "rate_limited_429", "other"), map(int, f[1:5])))
        counts.update(ok_per_s=float(f[5]), shed_503_per_s=float(f[6]))
        result["logins"]["login-storm" if f[0] == "storm" else f[0]] = counts
    elif kind == "ratio":
        name, values = rest.split("\t")
        by_round = [float(v) for v in values.split()]
        result["ratios"][name] = {"percent_by_round": by_round,
                                  "median_percent": round(statistics.median(by_round), 1)}
    elif kind == "storm":
        at_rest, in_storm = map(num, rest.split())
        result["login_storm"] = {"read_p99_at_rest_ms": at_rest, "read_p99_in_storm_ms": in_storm,
                                 "ratio": round(in_storm / at_rest, 2)
                                 if at_rest and in_storm is not None else None}
    elif kind == "memory":
        i, pid, idle, peak = rest.split()
        result["memory"] = (result["memory"] or []) + [
            {"instance": int(i), "pid": int(pid), "rss_idle_mb": float(idle), "rss_peak_mb": float(peak)}]
    elif kind == "startup":
        i, ms = rest.split()
        result["startup_ms"] = (result["startup_ms"] or []) + [int(ms)]
with open(sys.argv[2], "w") as out:
    json.dump(result, out, indent=2)
    out.write("\n")
PY
    log "results written to $JSON_OUT"
fi
