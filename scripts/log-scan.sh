#!/usr/bin/env bash
# No log line ever contains a password, a hash, a token or the key.
# Runs the HTTP test suite with every test server logging at debug level into one file,
# then searches that file for:
#   - the signing keys and passwords the tests use (string literals collected from
#     tests/api/*.rs tests/api/helpers/*.rs: KEY and PASSWORD constants, "password" fields of JSON bodies, and
#     the password argument of register/login calls; 8 characters or more, the shortest
#     password that can be set, so that short literals do not match ordinary words),
#   - bcrypt hashes ($2a$, $2b$, $2y$),
#   - JWT-shaped strings (eyJ....eyJ),
#   - PEM private keys (a "PRIVATE KEY" armour line).
# Prints each offending line with the secret redacted and exits 1 on any hit, or when
# the log is empty or lacks the servers' request lines (so it cannot pass vacuously).
#
#   bash scripts/log-scan.sh [test name filter]
#
# Runs on SQLite, or on PostgreSQL when TEST_DATABASE_URL is set. RUST_LOG overrides
# the level (default debug for everything, actix and the service included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
LOG="$WORK/test.log"
SECRETS="$WORK/secrets"
: >"$LOG"

echo "log-scan: running cargo test --test api with TEST_LOG_FILE=$LOG"
TEST_LOG_FILE="$LOG" RUST_LOG="${RUST_LOG:-debug}" cargo test --test api -- "$@"

# The literals, one per line, deduplicated.
{
    grep -hoE 'const [A-Z_]*(PASSWORD|KEY)[A-Z_]*: &str = "[^"]*"' tests/api/*.rs tests/api/helpers/*.rs |
        sed -E 's/.*= "(.*)"$/\1/'
    grep -hoE '"(current_|new_)?password": *"[^"]*"' tests/api/*.rs tests/api/helpers/*.rs |
        sed -E 's/.*: *"(.*)"$/\1/'
    grep -hoE '\.(register|login|logged_in)\([^,()]*, *"[^"]*"\)' tests/api/*.rs tests/api/helpers/*.rs |
        sed -E 's/.*, *"(.*)"\)$/\1/'
} | awk 'length($0) >= 8' | sort -u >"$SECRETS"

lines=$(wc -l <"$LOG")
requests=$(grep -c '"POST /login' "$LOG" || true)
echo "log-scan: $lines log lines, $requests of them POST /login request lines; $(wc -l <"$SECRETS") literal secrets + bcrypt and JWT patterns"
if [ "$lines" -eq 0 ] || [ "$requests" -eq 0 ]; then
    echo "log-scan: FAILED: the servers' logs were not captured, nothing to scan" >&2
    exit 1
fi

# Line numbers of every hit, then each line printed once with every secret redacted.
BCRYPT='\$2[aby]\$'
JWT='eyJ[A-Za-z0-9_-]+\.eyJ'
PEM='PRIVATE KEY'
hits="$WORK/hits"
{
    grep -nF -f "$SECRETS" "$LOG" || true
    grep -nE "$BCRYPT|$JWT|$PEM" "$LOG" || true
} | cut -d: -f1 | sort -nu >"$hits"

if [ -s "$hits" ]; then
    echo "log-scan: FAILED: $(wc -l <"$hits") log line(s) carry a secret (redacted below):" >&2
    awk 'NR == FNR { want[$1] = 1; next } FNR in want { print FNR ": " $0 }' "$hits" "$LOG" |
        SECRETS="$SECRETS" perl -pe '
            BEGIN {
                open(my $f, "<", $ENV{SECRETS}) or die;
                @s = sort { length($b) <=> length($a) } map { chomp; $_ } <$f>;
            }
            for my $s (@s) { s/\Q$s\E/[REDACTED]/g }
            s/eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_.-]*/[REDACTED JWT]/g;
            s/\$2[aby]\$[^\s"]*/[REDACTED HASH]/g;
            s/-----BEGIN [A-Z ]*PRIVATE KEY-----.*/[REDACTED PRIVATE KEY]/g;
        ' | head -n 50 >&2
    exit 1
fi
echo "log-scan: clean"
