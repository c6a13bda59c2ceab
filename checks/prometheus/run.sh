#!/usr/bin/env bash
# Prometheus check: the real promtool and a real Prometheus read what the binary serves
# on METRICS_ADDR. See checks/prometheus/README.md.
#
#   bash checks/prometheus/run.sh
#
# Installs Debian's prometheus package when promtool or prometheus is missing (its
# systemd service plays no part: this runs a Prometheus process of its own, with its own
# configuration and a temporary data directory, on a free loopback port). Builds the
# server (cargo build --bin stores-api, into CARGO_TARGET_DIR when set), starts it on a
# fresh SQLite file with METRICS_ADDR on a free loopback port, and prints one ok/FAIL
# line per check and "N passed, M failed" last; exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

log() { printf 'prometheus: %s\n' "$*" >&2; }

# 1. promtool and prometheus, from Debian.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    log "installing Debian's prometheus package (apt-get install -y prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d 101: the package's service is not started on install.
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d 2>/dev/null || true
    apt-get install -y -qq prometheus >/dev/null
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
log "$(promtool --version 2>&1 | head -n1)"

# 2. The server, with metrics on a free port.
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"
SERVER_LOG_PREFIX=prometheus
server_build
WORK="$(mktemp -d "${TMPDIR:-/tmp}/stores-prometheus.XXXXXX")"
PROM_PID=""
cleanup() {
    if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
        kill -TERM "$PROM_PID" 2>/dev/null || true
        wait "$PROM_PID" 2>/dev/null || true
    fi
    server_stop
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

METRICS_PORT="$(server_free_port)"
export METRICS_ADDR="127.0.0.1:$METRICS_PORT"
METRICS_URL="http://$METRICS_ADDR/metrics"
server_start prometheus

passed=0
failed=0
ok() { printf 'ok   %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: ok when the command succeeds
    local name="$1"
    shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

J='Content-Type: application/json'
post() { curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE_URL$1" -H "$J" -d "$2"; }
get() { curl -s -o /dev/null -w '%{http_code}' "$BASE_URL$1" "${@:2}"; }

# Some traffic: a registration, logins (one failed), reads, an unknown path.
traffic() {
    local token
    post /register '{"username": "prom-user", "password": "correct-horse-9"}' >/dev/null
    token="$(curl -s -X POST "$BASE_URL/login" -H "$J" \
        -d '{"username": "prom-user", "password": "correct-horse-9"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    post /login '{"username": "prom-user", "password": "wrong-password-1"}' >/dev/null
    for _ in $(seq 1 20); do
        get /store >/dev/null
        get /me -H "Authorization: Bearer $token" >/dev/null
        get /no-such-page >/dev/null
    done
}
traffic

# 3. The exposition, as promtool reads it.
headers="$(curl -s -D - -o "$WORK/metrics.txt" "$METRICS_URL")"
check "GET /metrics answers text/plain; version=0.0.4" \
    grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' <<<"$headers"
if promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.txt" 2>&1; then
    ok "promtool check metrics"
else
    fail "promtool check metrics: $(head -c 2000 "$WORK/promtool.txt")"
fi
check "the API port does not serve /metrics" test "$(get /metrics)" = 404
check "no raw path in a label" bash -c "! grep -q 'no-such-page' '$WORK/metrics.txt'"
check "no username in a label" bash -c "! grep -q 'prom-user' '$WORK/metrics.txt'"

# 4. The alert rules, and the names they and the dashboard use.
if promtool check rules docs/prometheus/alerts.yml >"$WORK/rules.txt" 2>&1; then
    ok "promtool check rules docs/prometheus/alerts.yml"
else
    fail "promtool check rules: $(cat "$WORK/rules.txt")"
fi
missing="$(python3 - "$WORK/metrics.txt" docs/prometheus/alerts.yml docs/grafana/stores-api.json <<'EOF'
import json, re, sys
exposed = set(re.findall(r"^# TYPE (\S+)", open(sys.argv[1]).read(), re.M))
text = open(sys.argv[2]).read()
exprs = []
def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            exprs.append(value) if key == "expr" and isinstance(value, str) else walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(json.load(open(sys.argv[3])))
used = set(re.findall(r"stores_api_\w+", text + "\n".join(exprs)))
def base(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in exposed:
            return name[: -len(suffix)]
    return name
print(" ".join(sorted(n for n in map(base, used) if n not in exposed)))
EOF
)"
check "every metric in the alert rules and the dashboard is exposed${missing:+ (missing: $missing)}" \
    test -z "$missing"

# 5. A real Prometheus scraping every second.
PROM_PORT="$(server_free_port)"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/docs/prometheus/alerts.yml
scrape_configs:
  - job_name: stores-api
    static_configs:
      - targets: ["$METRICS_ADDR"]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 </dev/null &
PROM_PID=$!
PROM="http://127.0.0.1:$PROM_PORT"
log "prometheus pid $PROM_PID on $PROM, scraping $METRICS_URL every second"
# Prometheus takes a moment to open its port (longer on a busy machine): wait for its
# readiness endpoint, at most 60 s, before asking it anything.
for _ in $(seq 1 120); do
    curl -sf -o /dev/null --max-time 2 "$PROM/-/ready" && break
    kill -0 "$PROM_PID" 2>/dev/null || break
    sleep 0.5
done

# query EXPR: the first result's value ("" when none), via /api/v1/query.
query() {
    # A failed request is an empty answer (the checks below report it), not the end
    # of the script.
    { curl -s --max-time 5 -G "$PROM/api/v1/query" --data-urlencode "query=$1" || true; } |
        python3 -c '
import json, sys
try:
    result = json.load(sys.stdin)["data"]["result"]
    print(result[0]["value"][1] if result else "")
except Exception:
    print("")'
}
# Traffic while Prometheus scrapes, until the target is up and a rate is non-zero;
# bounded: 40 rounds of about a second.
RATE='sum(rate(stores_api_http_requests_total[30s]))'
QUANTILE='histogram_quantile(0.99, sum by (le) (rate(stores_api_http_request_duration_seconds_bucket[30s])))'
rate=""
quantile=""
for _ in $(seq 1 40); do
    traffic
    sleep 1
    rate="$(query "$RATE")"
    quantile="$(query "$QUANTILE")"
    if python3 -c 'import math,sys; r,q=float(sys.argv[1] or 0),float(sys.argv[2] or "nan"); sys.exit(0 if r>0 and math.isfinite(q) else 1)' "$rate" "$quantile" 2>/dev/null; then
        break
    fi
done
check "Prometheus scraped the target (up == 1)" test "$(query 'up{job="stores-api"}')" = 1
check "$RATE is > 0 (got '$rate')" \
    python3 -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) > 0 else 1)' "$rate"
check "p99 latency is a finite number (got '$quantile')" \
    python3 -c 'import math,sys; sys.exit(0 if math.isfinite(float(sys.argv[1] or "nan")) else 1)' "$quantile"
logins="$(query 'sum(stores_api_auth_flows_total{flow="login",outcome="invalid_credentials"})')"
check "a failed login is counted (got '$logins')" \
    python3 -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) >= 1 else 1)' "$logins"
unmatched="$(query 'sum(stores_api_http_requests_total{route="unmatched",status="4xx"})')"
check "a 404 is counted under route=unmatched (got '$unmatched')" \
    python3 -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) >= 1 else 1)' "$unmatched"
rules="$(curl -s --max-time 5 "$PROM/api/v1/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
print(sum(1 for g in groups for r in g["rules"] if r.get("health") == "ok"))' 2>/dev/null || true)"
check "Prometheus evaluates the alert rules without error (healthy: ${rules:-0})" \
    test "${rules:-0}" -ge 5

if [ "$failed" -ne 0 ]; then
    log "prometheus log (tail):"
    tail -n 20 "$WORK/prometheus.log" >&2 || true
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
