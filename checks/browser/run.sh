#!/usr/bin/env bash
# The example SPA (examples/spa) in headless Chromium against a real server in cookie
# mode: register, log in through cookies, create a store, refresh after the access
# token's expiry, sessions, a cross-site form and fetch that must not create a store,
# and logout. See checks/browser/README.md.
#
#   bash checks/browser/run.sh
#
# Installs what it needs: Debian's chromium and chromium-driver when /usr/bin/chromium
# is missing (apt-get, as root or through sudo), and playwright-core from
# checks/browser/package-lock.json (npm ci into checks/browser/node_modules, again only
# when the lock file changed). Builds the server (cargo build --bin stores-api), starts
# it on a fresh SQLite file with the API on http://localhost:PORT, serves examples/spa
# on another localhost port and checks/browser/attacker on http://127.0.0.1:PORT (another
# site), runs test.mjs, and stops everything. The screenshot goes to
# target/checks/browser/. Environment (optional): CHROMIUM (default /usr/bin/chromium),
# ACCESS_EXPIRES (the access token lifetime for the run, default 5 seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/checks/browser"
cd "$ROOT"
SERVER_LOG_PREFIX=browser
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
ACCESS_EXPIRES="${ACCESS_EXPIRES:-5}"
OUT_DIR="$ROOT/target/checks/browser"
STAMP="$HERE/node_modules/.package-lock.sha256"

log() { printf 'browser: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "ERROR: '$*' needs root (or sudo)"
        return 1
    fi
}

# 1. The browser: Debian's Chromium (Playwright's own browser download is not used).
if [ ! -x "$CHROMIUM" ]; then
    if [ "$CHROMIUM" != /usr/bin/chromium ]; then
        log "ERROR: CHROMIUM=$CHROMIUM is not an executable"
        exit 1
    fi
    log "installing Debian's chromium and chromium-driver (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
log "using $("$CHROMIUM" --version 2>/dev/null | head -n1)"

# 2. playwright-core, pinned by package-lock.json; reinstalled when the lock changes.
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    log "ERROR: node and npm are needed (Debian: apt-get install nodejs npm)"
    exit 1
fi
want="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ] || [ ! -d "$HERE/node_modules/playwright-core" ]; then
    log "installing checks/browser/package-lock.json (npm ci)"
    (cd "$HERE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$STAMP"
fi

# 3. The server, in cookie mode, trusting the example page's origin only.
server_build
SPA_PORT="$(server_free_port)"
ATTACKER_PORT="$(server_free_port)"
SPA_PID=""
ATTACKER_PID=""
WEB_TMP="$(mktemp -d "${TMPDIR:-/tmp}/stores-api-browser.XXXXXX")"

stop_all() {
    local pid
    for pid in "$SPA_PID" "$ATTACKER_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    SPA_PID=""
    ATTACKER_PID=""
    rm -rf "$WEB_TMP"
    server_stop
}
trap stop_all EXIT
trap 'exit 130' INT TERM

export JWT_TOKEN_LOCATION=headers,cookies
export JWT_COOKIE_SECURE=false
export CORS_ALLOWED_ORIGINS="http://localhost:$SPA_PORT"
export JWT_ACCESS_TOKEN_EXPIRES="$ACCESS_EXPIRES"
export AUTH_RATE_LIMIT_PER_MINUTE=1000
server_start browser
API_PORT="${BASE_URL##*:}"

# 4. The two static sites: the example page and the other site's page.
serve_dir() { # DIR PORT LOGNAME: python3's http.server on 127.0.0.1, in the background
    python3 -m http.server "$2" --bind 127.0.0.1 --directory "$1" >"$WEB_TMP/$3.log" 2>&1 </dev/null &
}
wait_http() { # URL PID NAME
    local i
    for i in $(seq 1 100); do
        if curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then break; fi
        sleep 0.1
    done
    log "ERROR: $3 did not answer at $1; its log:"
    cat "$WEB_TMP/$3.log" >&2 || true
    return 1
}
serve_dir "$ROOT/examples/spa" "$SPA_PORT" spa
SPA_PID=$!
serve_dir "$HERE/attacker" "$ATTACKER_PORT" attacker
ATTACKER_PID=$!
wait_http "http://127.0.0.1:$SPA_PORT/index.html" "$SPA_PID" spa
wait_http "http://127.0.0.1:$ATTACKER_PORT/index.html" "$ATTACKER_PID" attacker
log "API on http://localhost:$API_PORT, page on http://localhost:$SPA_PORT/, other site on http://127.0.0.1:$ATTACKER_PORT/"

# 5. The test itself; one ok/FAIL line per assertion, then a summary.
status=0
SPA_URL="http://localhost:$SPA_PORT/" \
    API_URL="http://localhost:$API_PORT" \
    DIRECT_URL="$BASE_URL" \
    ATTACKER_URL="http://127.0.0.1:$ATTACKER_PORT/" \
    ACCESS_EXPIRES="$ACCESS_EXPIRES" \
    OUT_DIR="$OUT_DIR" \
    CHROMIUM="$CHROMIUM" \
    node "$HERE/test.mjs" </dev/null || status=$?
if [ "$status" -ne 0 ]; then
    log "FAILED (exit status $status); last lines of the server log:"
    tail -n 30 "$SERVER_LOG" >&2 || true
    exit "$status"
fi
