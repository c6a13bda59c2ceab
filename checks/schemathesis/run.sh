#!/usr/bin/env bash
# Fuzzes the running service against its own OpenAPI document with schemathesis, an
# independent OpenAPI-driven tester: no 500, and no status, header,
# content type or body outside the document.
#
#   bash checks/schemathesis/run.sh [extra `schemathesis run` options]
#
# 1. installs schemathesis (pinned, from PyPI) into target/schemathesis-venv (once; reused
#    while it has that version),
# 2. builds the server (cargo build --bin stores-api) and starts it on a free port with a
#    fresh SQLite file (scripts/lib/server.sh), rate limits off (the fuzzer sends
#    thousands of requests from one address) and a random admin password,
# 3. runs schemathesis over $BASE_URL/openapi.json twice: without a token (every guarded
#    operation must answer its documented 401) and with a fresh admin access token per
#    test case (checks/schemathesis/hooks.py says why per case, and how the bootstrap
#    admin is kept alive), so the guarded operations are exercised past their guard,
# 4. stops the server (always) and exits non-zero if either run found a failure.
#
# Each run prints schemathesis's summary (operations, test cases, failures, seed). JUnit
# reports go to the server's temp directory; KEEP_SERVER_LOG=1 keeps it.
# Needs python3 with venv. Environment (optional): PYTHON (default python3),
# SCHEMATHESIS_VERSION, SCHEMATHESIS_MAX_EXAMPLES (per operation and phase; default 20,
# about 1800 test cases in all), SCHEMATHESIS_SEED (default 5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SERVER_LOG_PREFIX=schemathesis
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/target/schemathesis-venv"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
SEED="${SCHEMATHESIS_SEED:-5}"
ST="$VENV/bin/schemathesis"

export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { printf 'schemathesis: %s\n' "$*" >&2; }

# 1. The venv, cached in target/ (cargo clean removes it too).
installed="$("$ST" --version 2>/dev/null || true)"
if [ "$installed" = "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    log "using schemathesis $SCHEMATHESIS_VERSION from ${VENV#"$ROOT"/}"
else
    ensure_venv "$VENV"
    log "installing schemathesis==$SCHEMATHESIS_VERSION into ${VENV#"$ROOT"/}"
    "$VENV/bin/python" -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION"
    log "installed $("$ST" --version)"
fi

# 2. A fresh server; stopped whatever happens from here on. The password is random so
# that no generated PUT /me/password body can change it (see the hooks).
export AUTH_RATE_LIMIT_PER_MINUTE=0 LOGIN_FAILURE_LIMIT=0
ADMIN_PASSWORD="st-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
export ADMIN_PASSWORD
server_build
trap server_stop EXIT
trap 'exit 130' INT TERM
server_start schemathesis
REPORT_DIR="$SERVER_TMP/report"

# A store, an item and a tag, linked, so that the ids the fuzzer tries first (the
# documented minimum, 1, and the examples) name real rows and the operations on them are
# exercised past their 404 (schemathesis cannot create them itself: the document
# declares no links between operations).
api() { # METHOD PATH [JSON]: prints the body, fails on a non-2xx status
    curl -fsS -X "$1" -H "Authorization: Bearer $seed_token" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "$BASE_URL$2"
}
seed_token="$(curl -fsS -H 'Content-Type: application/json' \
    --data "{\"username\": \"$ADMIN_USERNAME\", \"password\": \"$ADMIN_PASSWORD\"}" \
    "$BASE_URL/login" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
api POST /store '{"name": "Corner Shop"}' >/dev/null
api POST /item '{"name": "Chair", "price": 10.99, "store_id": 1}' >/dev/null
api POST /store/1/tag '{"name": "Furniture"}' >/dev/null
api POST /item/1/tag/1 >/dev/null
log "seeded store 1, item 1 and tag 1"

# 3. The runs. Checks (see `schemathesis run --help`):
#  - not_a_server_error, status_code_conformance, content_type_conformance,
#    response_headers_conformance, response_schema_conformance: every response is one
#    the document lists, in its shape;
#  - negative_data_rejection: input the document says is invalid is refused with a 4xx,
#    i.e. the document claims no constraint the server does not enforce;
#  - positive_data_acceptance_whole_case (checks/schemathesis/hooks.py; the built-in
#    positive_data_acceptance minus a mislabelled case, see there): input the document
#    says is valid is not refused with a 400 or 422, i.e. the server enforces no
#    constraint the document does not state (checks/schemathesis/schemathesis.toml lists the 422s
#    of rules about the database's state that no schema can express);
#  - unsupported_method, allow_header_conformance: a method the document does not list
#    for a path is a 405 with an Allow header naming those it does;
#  - ignored_auth: an operation that declares the bearer scheme refuses a request
#    without a token.
# Not run: use_after_free, ensure_resource_availability and object_level_authorization
# need the stateful phase (links between operations, which the document does not
# declare); missing_required_header (no operation has a required header parameter).
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance
CHECKS+=,response_headers_conformance,response_schema_conformance
CHECKS+=,negative_data_rejection,positive_data_acceptance_whole_case
CHECKS+=,unsupported_method,allow_header_conformance,ignored_auth

if [ ! -t 1 ]; then color=--no-color; else color=--force-color; fi
export SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$ROOT/checks/schemathesis"

# run NAME AUTH [options]: AUTH is what the hooks give each case (none or admin).
run() {
    local name="$1" auth="$2"
    shift 2
    log "run '$name': $ST run $BASE_URL/openapi.json --checks ... --max-examples $MAX_EXAMPLES --seed $SEED"
    ST_AUTH="$auth" "$ST" --config-file "$ROOT/checks/schemathesis/schemathesis.toml" $color \
        run "$BASE_URL/openapi.json" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers 1 \
        --request-timeout 30 \
        --report junit --report-dir "$REPORT_DIR/$name" \
        "$@"
}

status=0
started=$SECONDS
# Without a token only the guards and the public operations answer, so the coverage
# phase (the slow one) is left to the second run.
run no-token none --phases examples,fuzzing "$@" || status=$?
run admin-token admin --phases examples,coverage,fuzzing "$@" || status=$?
log "both runs took $((SECONDS - started))s"

if [ "$status" -ne 0 ]; then
    log "FAILED (see the failures above); last lines of the server log:"
    tail -n 20 "$SERVER_LOG" >&2 || true
    exit "$status"
fi
log "no failures"
