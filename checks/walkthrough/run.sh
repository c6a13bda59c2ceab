#!/usr/bin/env bash
# Runs checks/walkthrough/walkthrough.sh against a freshly started server (fresh SQLite file in a
# temp directory, free port, admin bootstrapped), the way CI does:
#
#   bash checks/walkthrough/run.sh
#
# Builds the server first (cargo build --bin stores-api), always stops it, and exits with
# the walkthrough's status. Environment (optional): ADMIN_USERNAME / ADMIN_PASSWORD.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SERVER_LOG_PREFIX=walkthrough
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"

server_build
trap server_stop EXIT
trap 'exit 130' INT TERM
server_start walkthrough

status=0
BASE_URL="$BASE_URL" bash "$ROOT/checks/walkthrough/walkthrough.sh" </dev/null || status=$?
if [ "$status" -ne 0 ]; then
    printf 'walkthrough: FAILED (exit status %s); last lines of the server log:\n' "$status" >&2
    tail -n 20 "$SERVER_LOG" >&2 || true
    exit "$status"
fi
