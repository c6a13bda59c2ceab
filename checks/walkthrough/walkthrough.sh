#!/usr/bin/env bash
# A walk through the Stores API with curl: what a client (an SPA, a mobile app, a script)
# does, step by step, and what the server answers. Read it as documentation, or run it
# against a server that was started with an admin account:
#
#   ADMIN_USERNAME=admin ADMIN_PASSWORD=admin-password cargo run      # in one terminal
#   bash checks/walkthrough/walkthrough.sh                                       # in another
#
# Environment: BASE_URL (default http://127.0.0.1:5000), ADMIN_USERNAME / ADMIN_PASSWORD
# (default admin / admin-password: the admin the server bootstraps at start-up).
# Every request states the status it expects; any other status stops the script with a
# non-zero exit. It creates a user, stores, an item and a tag with names unique to the
# run, so it can be run again against the same server. Uses jq when installed, else
# python3.
#
# Tokens are passed to api() by variable name (it prints "Bearer $ACCESS", not the token):
# shellcheck disable=SC2034
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:5000}"
BASE_URL="${BASE_URL%/}"
ADMIN_USERNAME="${ADMIN_USERNAME:-admin}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-admin-password}"

RUN="$(date +%s)-$$"
USERNAME="alice-$RUN"
PASSWORD="correct-horse-battery"

# ------------------------------------------------------------------------------ helpers

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# NO_JQ=1 forces the python3 fallback.
if [ -z "${NO_JQ:-}" ] && command -v jq >/dev/null 2>&1; then HAVE_JQ=1; else HAVE_JQ=""; fi

# Pretty-print a JSON body, shortening tokens (eyJ...) so the output stays readable.
pretty() {
    if [ -n "$HAVE_JQ" ]; then
        jq 'walk(if type == "string" and startswith("eyJ") then .[:24] + "..." else . end)' <<<"$1" 2>/dev/null || printf '%s\n' "$1"
    else
        python3 -c '
import json, sys
def short(v):
    if isinstance(v, str) and v.startswith("eyJ"): return v[:24] + "..."
    if isinstance(v, dict): return {k: short(x) for k, x in v.items()}
    if isinstance(v, list): return [short(x) for x in v]
    return v
print(json.dumps(short(json.loads(sys.argv[1])), indent=2))' "$1" 2>/dev/null || printf '%s\n' "$1"
    fi
}

# json_get PATH: a value from the last response body; PATH is dot-separated keys and
# list indices, e.g. access_token, store.id, 0.current.
json_get() {
    if [ -n "$HAVE_JQ" ]; then
        jq -r --arg p "$1" 'getpath($p | split(".") | map(tonumber? // .)) // empty' <<<"$BODY"
    else
        python3 -c '
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print("" if v is None else json.dumps(v) if isinstance(v, (dict, list, bool)) else v)' "$BODY" "$1"
    fi
}

step() { printf '\n## %s\n' "$*"; }

# api EXPECTED METHOD PATH [TOKEN_VARIABLE [JSON]]
# e.g. `api 200 GET /me ACCESS` is
#   curl -X GET "$BASE_URL/me" -H "Authorization: Bearer $ACCESS"    # expecting 200
# Sends the request (with "Authorization: Bearer $TOKEN_VARIABLE" when a variable name is
# given, and JSON as the body), prints method, path, status, the interesting headers and
# the body, leaves the body in $BODY, and exits 1 when the status is not EXPECTED.
api() {
    local expected="$1" method="$2" path="$3" token_var="${4:-}" data="${5:-}" status
    local args=(-sS -X "$method" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}')
    if [ -n "$token_var" ]; then args+=(-H "Authorization: Bearer ${!token_var}"); fi
    if [ -n "$data" ]; then args+=(-H 'Content-Type: application/json' --data "$data"); fi
    if ! status="$(curl "${args[@]}" "$BASE_URL$path")"; then
        printf 'cannot reach %s (is the server running?)\n' "$BASE_URL" >&2
        exit 1
    fi
    BODY="$(cat "$TMP/body")"
    printf '> %s %s%s\n' "$method" "$path" "${token_var:+   Authorization: Bearer \$$token_var}"
    [ -z "$data" ] || printf '> %s\n' "$data"
    printf '< %s\n' "$status"
    grep -i -E '^(x-total-count|www-authenticate):' "$TMP/headers" | sed 's/^/< /' || true
    pretty "$BODY"
    if [ "$status" != "$expected" ]; then
        printf '\nUNEXPECTED: %s %s answered %s, expected %s\n' "$method" "$path" "$status" "$expected" >&2
        exit 1
    fi
}

# credentials USERNAME PASSWORD: the JSON body of /register, /login and /fresh-login.
credentials() {
    if [ -n "$HAVE_JQ" ]; then
        jq -cn --arg u "$1" --arg p "$2" '{username: $u, password: $p}'
    else
        python3 -c 'import json, sys; print(json.dumps({"username": sys.argv[1], "password": sys.argv[2]}))' "$1" "$2"
    fi
}

# expect_field PATH VALUE: stop when the last body does not carry VALUE at PATH.
expect_field() {
    local got
    got="$(json_get "$1")"
    if [ "$got" != "$2" ]; then
        printf '\nUNEXPECTED: %s is "%s", expected "%s"\n' "$1" "$got" "$2" >&2
        exit 1
    fi
}

printf 'Stores API walkthrough against %s (user %s)\n' "$BASE_URL" "$USERNAME"

# ------------------------------------------------------------------------------ accounts

step "Is the service up? /health needs nothing, /ready checks the database"
api 200 GET /health
api 200 GET /ready

step "Register: anyone can create an account (username 3-80 chars, password 8-72 bytes)"
api 201 POST /register "" "$(credentials "$USERNAME" "$PASSWORD")"

step "A bad body gets 422, listing every field with a problem, not only the first"
api 422 POST /register "" '{"username": "al", "password": "short", "role": "admin"}'
expect_field error validation_error

step "Log in: a fresh access token (15 min) and a refresh token (30 days), one new session"
api 200 POST /login "" "$(credentials "$USERNAME" "$PASSWORD")"
ACCESS="$(json_get access_token)"
REFRESH="$(json_get refresh_token)"

step "Who am I? Every protected route wants 'Authorization: Bearer <access token>'"
api 200 GET /me ACCESS

step "Without a token the answer is 401 authorization_required (and a WWW-Authenticate header)"
api 401 GET /me
expect_field error authorization_required

step "The caller's live sessions: this one is marked current"
api 200 GET /sessions ACCESS
expect_field 0.current true

# ------------------------------------------------------------------------------ refresh

step "When the access token expires, the client trades the refresh token for a new pair"
# The refresh token is spent by this call; keep only the new one. The new access token
# is NOT fresh: it proves the client holds a session, not that the user just typed a
# password.
api 200 POST /refresh REFRESH
SPENT_REFRESH="$REFRESH"
REFRESH="$(json_get refresh_token)"
NONFRESH="$(json_get access_token)"

step "A non-fresh token is fine for ordinary routes..."
api 200 GET /me NONFRESH

step "...but routes that create or destroy things want a fresh one: 401 fresh_token_required"
api 401 POST /store NONFRESH "{\"name\": \"Hardware $RUN\"}"
expect_field error fresh_token_required

step "Fresh-login: the user types the password again and gets a fresh access token (no refresh token)"
api 200 POST /fresh-login "" "$(credentials "$USERNAME" "$PASSWORD")"
FRESH="$(json_get access_token)"

# ------------------------------------------------------------------------------ stores, items, tags

step "Create a store (fresh token)"
api 201 POST /store FRESH "{\"name\": \"Hardware $RUN\"}"
STORE_ID="$(json_get id)"

step "Create an item in it; prices are exact, at most 2 decimals"
api 201 POST /item FRESH "{\"name\": \"Hammer\", \"price\": 10.1, \"store_id\": $STORE_ID}"
ITEM_ID="$(json_get id)"

step "An item with problems in every field: 422, each one listed under errors.json"
api 422 POST /item FRESH '{"name": "", "price": 1.005, "store_id": 999999999}'

step "Update the price (any access token will do)"
api 200 PUT "/item/$ITEM_ID" NONFRESH '{"price": 10.3}'
expect_field price 10.3

step "Create a tag in the store, and tag the item with it"
api 201 POST "/store/$STORE_ID/tag" NONFRESH '{"name": "tools"}'
TAG_ID="$(json_get id)"
api 201 POST "/item/$ITEM_ID/tag/$TAG_ID" NONFRESH
api 200 GET "/item/$ITEM_ID" NONFRESH
expect_field tags.0.name tools

step "List items: without a token only ids and names, with one the full items (X-Total-Count has the total)"
api 200 GET "/item?limit=5"
api 200 GET "/item?limit=5" NONFRESH

step "The store, with its items and tags"
api 200 GET "/store/$STORE_ID" NONFRESH

# ------------------------------------------------------------------------------ admin

step "Deleting an item takes an admin: 403 admin_required for everyone else"
api 403 DELETE "/item/$ITEM_ID" FRESH
expect_field error admin_required

step "The admin (created at server start from ADMIN_USERNAME / ADMIN_PASSWORD) logs in"
api 200 POST /login "" "$(credentials "$ADMIN_USERNAME" "$ADMIN_PASSWORD")"
ADMIN="$(json_get access_token)"

step "Admins list the users"
api 200 GET "/users?limit=5" ADMIN

step "A tag still on an item cannot be deleted (400); untag the item first, then delete the tag (202)"
api 400 DELETE "/tag/$TAG_ID" ADMIN
api 200 DELETE "/item/$ITEM_ID/tag/$TAG_ID" NONFRESH
api 202 DELETE "/tag/$TAG_ID" ADMIN

step "The admin deletes the item, then the store (a store needs a FRESH admin token: this one is, from /login)"
api 200 DELETE "/item/$ITEM_ID" ADMIN
api 200 DELETE "/store/$STORE_ID" ADMIN
api 404 GET "/store/$STORE_ID" ADMIN

# ------------------------------------------------------------------------------ revocation

step "A spent refresh token presented again looks stolen: 401 token_revoked, and the whole session ends"
api 401 POST /refresh SPENT_REFRESH
expect_field error token_revoked

step "So the tokens of that session stop working too, the newest refresh token included"
api 401 GET /me NONFRESH
expect_field error token_revoked
api 401 POST /refresh REFRESH
expect_field error token_revoked

step "Logout ends the current session (the fresh-login one here): its token is refused at once"
api 200 POST /logout FRESH
api 401 GET /me FRESH
expect_field error token_revoked

step "Each user has a security log (newest first): this login, the logout before it, the reuse"
api 200 POST /login "" "$(credentials "$USERNAME" "$PASSWORD")"
AGAIN="$(json_get access_token)"
api 200 GET "/me/audit?limit=3" AGAIN
expect_field events.0.action login
expect_field events.1.action logout
api 200 GET "/me/audit?action=refresh_reuse" AGAIN
expect_field events.0.outcome failed

step "The admin reads the whole audit log, filtered: here every refresh reuse"
api 200 GET "/audit?action=refresh_reuse&limit=5" ADMIN
expect_field events.0.action refresh_reuse

step "The admin logs out too"
api 200 POST /logout ADMIN

printf '\nWalkthrough complete: every request got the status it expected.\n'
