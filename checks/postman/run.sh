#!/usr/bin/env bash
# Runs the Postman collection with newman against a freshly started server:
#
#   bash checks/postman/run.sh [extra newman options, e.g. --reporters cli,junit]
#   bash checks/postman/run.sh --folder "Log in" --folder "Get the item"   # part of it
#
# 1. installs newman 6 from the npm registry into target/newman/ (once; reused after),
# 2. builds the server (cargo build --bin stores-api) and starts it on a free port with a
#    fresh SQLite file in a temp directory (scripts/lib/server.sh), reading tokens from
#    headers only, again reading cookies too (JWT_TOKEN_LOCATION=headers,cookies), and
#    again signing with EdDSA (JWT_ALGORITHM=EdDSA),
# 3. runs checks/postman/stores-api.postman_collection.json with its environment, baseUrl and the
#    admin credentials pointing at that server (in order; each request also runs on its own
#    after "Log in", see checks/postman/README.md),
# 4. stops the server (always) and exits non-zero if any request or assertion failed.
#
# Needs node (16+) and npm. Environment (optional): ADMIN_USERNAME / ADMIN_PASSWORD
# (default admin / admin-password), NEWMAN_VERSION (default 6).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SERVER_LOG_PREFIX=newman
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"

NEWMAN_DIR="$ROOT/target/newman"
NEWMAN="$NEWMAN_DIR/node_modules/.bin/newman"
NEWMAN_VERSION="${NEWMAN_VERSION:-6}"
COLLECTION="$ROOT/checks/postman/stores-api.postman_collection.json"
ENVIRONMENT="$ROOT/checks/postman/stores-api.postman_environment.json"

log() { printf 'newman: %s\n' "$*" >&2; }

# 1. newman, cached in target/newman (cargo clean removes it too).
installed="$("$NEWMAN" --version 2>/dev/null || true)"
case "$installed" in
    "$NEWMAN_VERSION".*) log "using newman $installed from ${NEWMAN_DIR#"$ROOT"/}" ;;
    *)
        command -v npm >/dev/null || { log "ERROR: npm not found (install Node.js 16+)"; exit 1; }
        log "installing newman@$NEWMAN_VERSION into ${NEWMAN_DIR#"$ROOT"/}"
        mkdir -p "$NEWMAN_DIR"
        npm install --prefix "$NEWMAN_DIR" --no-audit --no-fund --loglevel=error "newman@$NEWMAN_VERSION"
        log "installed newman $("$NEWMAN" --version)"
        ;;
esac

# 2. and 3., three times: header clients must notice neither browser mode nor public-key
# tokens, so the collection runs against a server that reads only headers, one that
# reads cookies too, and one that signs with EdDSA (keys made by the server).
server_build
trap server_stop EXIT
trap 'exit 130' INT TERM
# Colours only on a terminal (FORCE_COLOR=0 also silences the failure table's; newman's
# own --color flag would switch the table's colours on).
if [ ! -t 1 ]; then export FORCE_COLOR=0; fi
export JWT_KEY_ENCRYPTION_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
for setup in headers/HS256 headers,cookies/HS256 headers/EdDSA; do
    location="${setup%/*}"
    log "JWT_TOKEN_LOCATION=$location JWT_ALGORITHM=${setup#*/}"
    export JWT_TOKEN_LOCATION="$location" JWT_ALGORITHM="${setup#*/}"
    server_start newman
    # newman exits 1 when any request or assertion failed.
    status=0
    "$NEWMAN" run "$COLLECTION" \
        --environment "$ENVIRONMENT" \
        --env-var "baseUrl=$BASE_URL" \
        --env-var "admin_username=$ADMIN_USERNAME" \
        --env-var "admin_password=$ADMIN_PASSWORD" \
        --reporters cli \
        "$@" || status=$?
    if [ "$status" -ne 0 ]; then
        log "FAILED with JWT_TOKEN_LOCATION=$location JWT_ALGORITHM=$JWT_ALGORITHM (newman exit status $status); last lines of the server log:"
        tail -n 20 "$SERVER_LOG" >&2 || true
        exit "$status"
    fi
    server_stop
done
log "all requests and assertions passed: headers, browser mode, and EdDSA tokens"
