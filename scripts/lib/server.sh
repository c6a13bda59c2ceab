# shellcheck shell=bash
# Start and stop a throwaway stores-api server for the scripts that drive it
# (checks/postman/run.sh, checks/walkthrough/run.sh). Source it, then:
#
#   server_build                 # cargo build --bin stores-api (incremental)
#   trap server_stop EXIT        # always stop it, whatever happens next
#   server_start [NAME]          # fresh temp SQLite NAME.db, free port, waits for GET /health
#   ... use "$BASE_URL", "$ADMIN_USERNAME", "$ADMIN_PASSWORD" ...
#
# server_start exports BASE_URL, ADMIN_USERNAME and ADMIN_PASSWORD (defaults below, or
# the caller's) and sets SERVER_PID, SERVER_TMP and SERVER_LOG. The server runs from the
# repository root (so config/ is found) with APP_ENV=test, BCRYPT_COST=4, a random
# JWT_SECRET_KEY and its own data directory, which server_stop removes.

SERVER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVER_PID=""
SERVER_TMP=""
SERVER_LOG=""
SERVER_STARTUP_TIMEOUT="${SERVER_STARTUP_TIMEOUT:-30}"

server_log() { printf '%s: %s\n' "${SERVER_LOG_PREFIX:-server}" "$*" >&2; }

server_binary() {
    local target_dir="${CARGO_TARGET_DIR:-$SERVER_ROOT/target}"
    case "$target_dir" in /*) ;; *) target_dir="$SERVER_ROOT/$target_dir" ;; esac
    printf '%s/debug/stores-api\n' "$target_dir"
}

server_build() {
    server_log "building the server (cargo build --bin stores-api)"
    (cd "$SERVER_ROOT" && cargo build --bin stores-api)
}

# A TCP port nobody listens on right now (the kernel's choice).
server_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

server_start() {
    local db_name="${1:-stores}"
    local bin port key waited=0
    bin="$(server_binary)"
    if [ ! -x "$bin" ]; then
        server_log "ERROR: no server binary at $bin (run cargo build --bin stores-api)"
        return 1
    fi
    SERVER_TMP="$(mktemp -d "${TMPDIR:-/tmp}/stores-api.XXXXXX")"
    SERVER_LOG="$SERVER_TMP/server.log"
    port="$(server_free_port)"
    key="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
    export ADMIN_USERNAME="${ADMIN_USERNAME:-admin}"
    export ADMIN_PASSWORD="${ADMIN_PASSWORD:-admin-password}"
    export BASE_URL="http://127.0.0.1:$port"

    (
        cd "$SERVER_ROOT" &&
            exec env APP_ENV=test HOST=127.0.0.1 PORT="$port" \
                DATABASE_URL="$SERVER_TMP/$db_name.db" DATA_DIR="$SERVER_TMP" \
                JWT_SECRET_KEY="$key" BCRYPT_COST=4 RUST_LOG="${RUST_LOG:-warn}" \
                ADMIN_USERNAME="$ADMIN_USERNAME" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
                "$bin" serve
    ) >"$SERVER_LOG" 2>&1 </dev/null &
    SERVER_PID=$!
    server_log "started pid $SERVER_PID on $BASE_URL (database $SERVER_TMP/$db_name.db)"

    # Bounded wait for GET /health; give up early if the process died.
    until curl -fsS -o /dev/null --max-time 2 "$BASE_URL/health" 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            server_log "ERROR: the server exited during start-up; its log:"
            cat "$SERVER_LOG" >&2
            SERVER_PID=""
            return 1
        fi
        if [ "$waited" -ge $((SERVER_STARTUP_TIMEOUT * 10)) ]; then
            server_log "ERROR: GET /health did not answer 200 within ${SERVER_STARTUP_TIMEOUT}s; server log:"
            cat "$SERVER_LOG" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    server_log "GET /health answered 200"
}

# Idempotent; safe as an EXIT trap. SIGTERM first (graceful shutdown), SIGKILL after 10 s.
server_stop() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            server_log "server did not stop on SIGTERM within 10s; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        server_log "stopped pid $SERVER_PID"
    fi
    SERVER_PID=""
    if [ -n "$SERVER_TMP" ] && [ -d "$SERVER_TMP" ]; then
        if [ -n "${KEEP_SERVER_LOG:-}" ]; then
            server_log "kept $SERVER_TMP (KEEP_SERVER_LOG set)"
        else
            rm -rf "$SERVER_TMP"
        fi
    fi
    SERVER_TMP=""
}
