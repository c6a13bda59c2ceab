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
# The servers log in LOG_FORMAT's format (text by default). With LOG_FORMAT=json it
# also checks that every line is one JSON object with time, level, target and message,
# and every access line has method, route, path, status, bytes, duration_ms,
# client_ip and request_id; the secrets are then searched for in the lines as written
# and in their decoded values (an escaped character cannot hide one).
#
#   bash scripts/log-scan.sh [test name filter]
#   LOG_FORMAT=json bash scripts/log-scan.sh [test name filter]
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

FORMAT="${LOG_FORMAT:-text}"
case "$FORMAT" in
    text | json) ;;
    *) echo "log-scan: LOG_FORMAT must be text or json (got '$FORMAT')" >&2; exit 2 ;;
esac

echo "log-scan: running cargo test --test api with TEST_LOG_FILE=$LOG LOG_FORMAT=$FORMAT"
TEST_LOG_FILE="$LOG" LOG_FORMAT="$FORMAT" RUST_LOG="${RUST_LOG:-debug}" cargo test --test api -- "$@"

# What the secrets are searched for in: the log, and in JSON its decoded values too,
# one line of `key=value` pairs per log line, so that line numbers match.
SCANNED=("$LOG")
if [ "$FORMAT" = json ]; then
    DECODED="$WORK/decoded.log"
    python3 - "$LOG" "$DECODED" <<'PY'
import json, sys

REQUIRED = ("time", "level", "target", "message")
ACCESS = ("method", "route", "path", "status", "bytes", "duration_ms", "client_ip", "request_id")
bad = 0
with open(sys.argv[1], encoding="utf-8") as log, open(sys.argv[2], "w", encoding="utf-8") as out:
    for number, line in enumerate(log, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
            missing = [k for k in REQUIRED if not isinstance(record.get(k), str)]
            if record.get("target") == "access":
                missing += [k for k in ACCESS if k not in record]
                if not isinstance(record.get("status"), int) or not isinstance(record.get("duration_ms"), (int, float)):
                    missing.append("numeric status and duration_ms")
            if missing:
                raise ValueError("missing " + ", ".join(missing))
        except ValueError as e:
            bad += 1
            if bad <= 20:
                # The first 200 characters: enough to see what is wrong, and short
                # of most secrets (the secret scan below reports those redacted).
                print(f"log-scan: line {number} is not a complete JSON log line ({e}): {line[:200].rstrip()}", file=sys.stderr)
            out.write("\n")
            continue
        out.write(" ".join(f"{k}={v}" for k, v in record.items()).replace("\n", " ") + "\n")
if bad:
    print(f"log-scan: FAILED: {bad} line(s) are not complete JSON log lines", file=sys.stderr)
    sys.exit(1)
PY
    echo "log-scan: every line is a JSON object with the required fields"
    SCANNED+=("$DECODED")
fi

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
# The access lines of logins: `"POST /login" 200` in text, `\"POST /login\" 200` in JSON.
requests=$(grep -cE '"POST /login\\?" [0-9]{3} ' "$LOG" || true)
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
for scanned in "${SCANNED[@]}"; do
    grep -nF -f "$SECRETS" "$scanned" || true
    grep -nE "$BCRYPT|$JWT|$PEM" "$scanned" || true
done | cut -d: -f1 | sort -nu >"$hits"

if [ -s "$hits" ]; then
    echo "log-scan: FAILED: $(wc -l <"$hits") log line(s) carry a secret (redacted below):" >&2
    # In JSON the decoded lines, where no escape can split a secret from its redaction.
    awk 'NR == FNR { want[$1] = 1; next } FNR in want { print FNR ": " $0 }' "$hits" "${SCANNED[-1]}" |
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
echo "log-scan: clean ($FORMAT)"
