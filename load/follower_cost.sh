#!/usr/bin/env bash
# What the revocation follower costs PostgreSQL, per poll and per instance.
# `bash load/follower_cost.sh --help` explains it; PERFORMANCE.md holds its figures.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<'EOF'
Usage: bash load/follower_cost.sh [--postgres URL] [--sessions N] [--seconds S] [CHURN ...]

Every instance's revocation follower polls PostgreSQL every REVOCATION_POLL_INTERVAL
(0.25 s) with three statements: the database clock, the revocation log since its cursor,
and the sessions created or refreshed in the last 10 s (so that a session committed late
by another instance is still seen). Their cost grows with the number of live sessions
only through the indexes, and with the cluster's session churn (logins plus refreshes a
second, all instances together) through the rows every poll reads again.

This creates a fresh database (migrations/postgres applied with psql), fills it with N
live sessions (default 1,000,000), then for each CHURN (default: 0 100 1000 10000
sessions created a second) gives the last 10.25 s that many new sessions and runs the
follower's three statements with pgbench on one connection for S seconds (default 10).
It prints per churn: rows a poll reads, milliseconds per poll, and the polls a second
one PostgreSQL core serves at that cost, i.e. how many instances (at 4 polls a second)
one core of the database can follow. The database is dropped at the end.

  --postgres URL   a PostgreSQL server (default: the URL scripts/postgres.sh prints)
  --sessions N     live sessions in the table (default 1000000)
  --seconds S      pgbench duration per churn (default 10)
EOF
}

PG_SERVER_URL="${LOAD_DATABASE_URL:-}"
SESSIONS=1000000
SECONDS_PER=10
CHURNS=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --postgres) PG_SERVER_URL="$2"; shift 2 ;;
        --sessions) SESSIONS="$2"; shift 2 ;;
        --seconds) SECONDS_PER="$2"; shift 2 ;;
        -*) echo "follower_cost: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) CHURNS+=("$1"); shift ;;
    esac
done
[ ${#CHURNS[@]} -gt 0 ] || CHURNS=(0 100 1000 10000)
for n in "$SESSIONS" "$SECONDS_PER" "${CHURNS[@]}"; do
    case "$n" in ''|*[!0-9]*) echo "follower_cost: $n is not a number" >&2; exit 2 ;; esac
done

PGBENCH="$(command -v pgbench || true)"
if [ -z "$PGBENCH" ]; then
    for candidate in /usr/lib/postgresql/*/bin/pgbench; do PGBENCH="$candidate"; done
fi
[ -x "$PGBENCH" ] || { echo "follower_cost: pgbench is needed (postgresql package)" >&2; exit 1; }
if [ -z "$PG_SERVER_URL" ]; then
    PG_SERVER_URL="$(bash "$ROOT/scripts/postgres.sh" | tail -n1)"
fi
DB="stores_follower_$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_SERVER_URL" "$DB")"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/stores-follower.XXXXXX")"
cleanup() {
    psql "$PG_SERVER_URL" -q -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_SERVER_URL" -q -c "CREATE DATABASE $DB" >/dev/null
for up in "$ROOT"/migrations/postgres/*/up.sql; do
    psql "$URL" -q -v ON_ERROR_STOP=1 -f "$up" >/dev/null
done
echo "follower_cost: filling $SESSIONS live sessions" >&2
psql "$URL" -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
INSERT INTO users (username, username_key, password_hash, created_at)
    VALUES ('follower', 'follower', 'x', now());
INSERT INTO sessions (id, user_id, created_at, expires_at, refresh_jti, user_agent, ip)
    SELECT gen_random_uuid()::text, 1, now() - interval '1 hour', now() + interval '1 hour',
           gen_random_uuid()::text, 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0', '203.0.113.7'
    FROM generate_series(1, $SESSIONS);
INSERT INTO revocations (kind, subject, user_id, revoked_at, expires_at)
    SELECT 'session', gen_random_uuid()::text, 1, now(), now() + interval '1 hour'
    FROM generate_series(1, 1000);
VACUUM ANALYZE;
SQL

# The follower's poll, as src/auth/revocation/log.rs issues it: three statements.
cat >"$TMP/poll.sql" <<'SQL'
SELECT date_trunc('microseconds', clock_timestamp() AT TIME ZONE 'utc');
SELECT id, kind, subject, user_id, revoked_at, expires_at FROM revocations WHERE id > 1000 OR id = ANY('{}'::bigint[]);
SELECT id, user_id, expires_at, revoked_at FROM sessions WHERE created_at >= (now() AT TIME ZONE 'utc') - interval '10.25 seconds' OR refreshed_at >= (now() AT TIME ZONE 'utc') - interval '10.25 seconds';
SQL

printf '\nstores-api revocation follower on PostgreSQL %s: %s live sessions, %s cores, pgbench %s s per row\n' \
    "$(psql "$URL" -Atc 'SHOW server_version' | cut -d' ' -f1)" "$SESSIONS" "$(nproc)" "$SECONDS_PER"
printf 'the sessions table with its indexes: %s bytes per session\n\n' \
    "$(psql "$URL" -Atc "SELECT pg_total_relation_size('sessions') / greatest(count(*), 1) FROM sessions")"
{
    echo "churn (sessions/s)|rows per poll|ms per poll|polls/s per PG core|instances per PG core (4 polls/s)"
    for churn in "${CHURNS[@]}"; do
        rows=$(( churn * 1025 / 100 ))
        # The recent sessions, spread over 10.25 s as that churn would leave them, and
        # shifted by the run's length so that every poll of the run reads them all.
        psql "$URL" -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
DELETE FROM sessions WHERE id LIKE 'recent-%';
INSERT INTO sessions (id, user_id, created_at, expires_at, refresh_jti)
    SELECT 'recent-' || g, 1,
           (now() AT TIME ZONE 'utc') + interval '$SECONDS_PER seconds'
               - (g * interval '10.25 seconds' / greatest($rows, 1)),
           now() + interval '1 hour', gen_random_uuid()::text
    FROM generate_series(1, $rows) g;
ANALYZE sessions;
SQL
        out="$("$PGBENCH" -n -c 1 -j 1 -T "$SECONDS_PER" -f "$TMP/poll.sql" "$URL" 2>&1)"
        ms="$(awk '/^latency average/ { print $4 }' <<<"$out")"
        [ -n "$ms" ] || { echo "follower_cost: pgbench failed: $out" >&2; exit 1; }
        python3 - "$churn" "$rows" "$ms" <<'PY'
import sys
churn, rows, ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
polls = 1000 / ms
print(f"{churn}|{rows}|{ms:.3f}|{polls:.0f}|{polls / 4:.0f}")
PY
    done
} | column -t -s '|' -o ' | '
echo
echo "ms per poll is pgbench's average latency on one connection over loopback: the"
echo "database's time for the three statements plus three round trips and the client's"
echo "reading of the rows. It overstates the database's CPU per poll, so the instances"
echo "one core follows are a lower bound."
