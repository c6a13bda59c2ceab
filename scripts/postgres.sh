#!/usr/bin/env bash
# Make sure a local PostgreSQL 15 cluster is installed, running and reachable over TCP
# with a password, then print the connection URL on the last line of stdout.
#
# Safe to run any number of times. Needs root (installs packages, runs as `postgres`).
#
#   DB_URL=$(bash scripts/postgres.sh | tail -n1)
#
# Environment (all optional):
#   PGPASSWORD_TO_SET   password given to the `postgres` role (default: postgres)
#   PG_VERSION          cluster version (default: 15)
#   PG_CLUSTER          cluster name (default: main)
#   PG_WAIT_SECONDS     how long to wait for the server to accept connections (default: 30)
#
# Progress messages go to stderr; stdout carries only the URL.
set -euo pipefail

PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-main}"
PG_PASSWORD="${PGPASSWORD_TO_SET:-postgres}"
PG_WAIT_SECONDS="${PG_WAIT_SECONDS:-30}"
PG_HOST=127.0.0.1

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
    printf 'postgres.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

# Run a command as the postgres OS user, from a directory it can read.
as_postgres() {
    if command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u postgres -- "$@")
    else
        local cmd
        printf -v cmd '%q ' "$@"
        (cd / && su postgres -s /bin/sh -c "$cmd")
    fi
}

# Status column of `pg_lsclusters` for our cluster ("online", "down", ...), empty if absent.
cluster_status() {
    pg_lsclusters --no-header 2>/dev/null |
        awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $4; exit }'
}

cluster_port() {
    pg_lsclusters --no-header 2>/dev/null |
        awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3; exit }'
}

# Percent-encode a string for use in the userinfo part of a URL.
urlencode() {
    local s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
            [a-zA-Z0-9._~-]) out+="$c" ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

if [ "$(id -u)" -ne 0 ]; then
    die "must run as root (it installs packages and runs commands as the postgres user)"
fi

# 1. Install PostgreSQL if it is missing.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v pg_lsclusters >/dev/null 2>&1 ||
    [ ! -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ]; then
    log "PostgreSQL $PG_VERSION not found; installing it with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2 || die "apt-get update failed"
    apt-get install -y postgresql >&2 || die "apt-get install postgresql failed"
    [ -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ] ||
        die "installed 'postgresql' but PostgreSQL $PG_VERSION is still missing (set PG_VERSION?)"
fi

# 2. Create the cluster if the package did not (e.g. create_main_cluster = false).
if [ -z "$(cluster_status)" ]; then
    log "cluster $PG_VERSION/$PG_CLUSTER does not exist; creating it"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >&2 ||
        die "pg_createcluster $PG_VERSION $PG_CLUSTER failed"
fi

# 3. Start it if it is down.
status="$(cluster_status)"
case "$status" in
    online*)
        log "cluster $PG_VERSION/$PG_CLUSTER already running"
        ;;
    *)
        log "cluster $PG_VERSION/$PG_CLUSTER is '$status'; starting it"
        if ! pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >&2; then
            # Another caller may have started it at the same moment.
            case "$(cluster_status)" in
                online*) log "cluster came up concurrently" ;;
                *)
                    tail -n 20 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 2>/dev/null || true
                    die "could not start cluster $PG_VERSION/$PG_CLUSTER (log above)"
                    ;;
            esac
        fi
        ;;
esac

PG_PORT="$(cluster_port)"
[ -n "$PG_PORT" ] || die "could not read the port of cluster $PG_VERSION/$PG_CLUSTER"

# 4. Wait until it accepts TCP connections.
deadline=$((SECONDS + PG_WAIT_SECONDS))
until pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 20 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 2>/dev/null || true
        die "PostgreSQL on $PG_HOST:$PG_PORT did not accept connections within ${PG_WAIT_SECONDS}s"
    fi
    sleep 0.5
done
log "PostgreSQL is accepting connections on $PG_HOST:$PG_PORT"

# 5. Set the postgres role's password (over the local socket, peer auth). The password is
#    passed as a psql variable so quotes in it cannot break the statement.
printf '%s\n' "ALTER USER postgres PASSWORD :'pw';" |
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -v "pw=$PG_PASSWORD" >&2 ||
    die "could not set the password of role postgres"
log "password of role postgres set"

# 6. Check a password login over TCP works, as the application will do it.
if ! out="$(PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=10 psql -X -w -q -t -A \
    -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -c 'select 1' 2>&1)" || [ "$out" != "1" ]; then
    printf '%s\n' "$out" >&2
    die "password login to postgres@$PG_HOST:$PG_PORT failed (check pg_hba.conf)"
fi
log "TCP password login verified"

# 7. Drop the databases earlier test runs left behind (each API test creates one named
#    stores_test_<uuid>): those nobody is connected to and made over an hour ago
#    (PG_TEST_DB_MAX_AGE), so a test run going on beside this one keeps its own.
stale="$(as_postgres psql -X -q -t -A -p "$PG_PORT" -c "
    SELECT d.datname FROM pg_database d
    WHERE d.datname LIKE 'stores\\_test\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)
      AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification
          < now() - interval '${PG_TEST_DB_MAX_AGE:-1 hour}'" 2>/dev/null || true)"
count=0
[ -n "$stale" ] && log "dropping $(printf '%s\n' $stale | wc -l) test databases left by earlier runs"
for db in $stale; do
    as_postgres dropdb -p "$PG_PORT" --if-exists "$db" 2>/dev/null && count=$((count + 1))
done
if [ "$count" -gt 0 ]; then log "dropped $count"; fi

printf 'postgres://postgres:%s@%s:%s/postgres\n' "$(urlencode "$PG_PASSWORD")" "$PG_HOST" "$PG_PORT"
