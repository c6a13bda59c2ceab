#!/usr/bin/env bash
# Runs README.md's shell blocks in order, the way a new user pastes them, against a
# fresh server on SQLite, and stops everything it started:
#
#   bash checks/readme/run.sh </dev/null
#
# The convention, in the fence's info string (GitHub highlights a block by the first
# word, `sh`, and ignores the words after it):
#
#   ```sh          run, in order, in one shell session (variables and functions carry
#                  over from block to block, as in the user's terminal), under
#                  `set -euo pipefail`: the first failing command fails the check
#   ```sh server   starts the server: run in the background in a process group of its
#                  own, then waited for on GET $BASE/health; stopped at the end
#   ```sh skip     not run (`cargo test`, PostgreSQL, the checks themselves: CI runs
#                  those on its own)
#
# and, inside a block, a comment line right after a command:
#
#   # => TEXT      the output of the commands since the previous `# =>` line (or the
#                  block's start) must contain TEXT; `...` in TEXT stands for anything.
#                  Several `# =>` lines in a row must each match.
#
# A block fenced as ```bash or ```shell, or with another word after `sh`, is an error:
# every shell block is either checked or explicitly skipped.
#
# Before the blocks it exports PORT (a free port), BASE (http://127.0.0.1:PORT),
# DATABASE_URL and DATA_DIR (in a temporary directory), so that README's commands, which
# default to http://127.0.0.1:5000 and data/, talk to that server and leave the clone
# clean; and CURL_HOME with a .curlrc that gives every curl a 30 s timeout. It builds
# the server first (cargo build --bin stores-api), so that the server block's
# `cargo run` starts at once. Timeouts (seconds, environment): README_CHECK_TIMEOUT
# (240) for all the blocks, README_CHECK_STARTUP_TIMEOUT (120) for each server block to
# answer /health. KEEP_README_CHECK=1 keeps the temporary directory (logs, the
# generated script).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
README="${README:-$ROOT/README.md}"
SERVER_LOG_PREFIX=readme
# shellcheck source=scripts/lib/server.sh
. "$ROOT/scripts/lib/server.sh"

say() { printf 'readme: %s\n' "$*" >&2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/stores-api-readme.XXXXXX")"
PIDS="$TMP/server.pids"
: >"$PIDS"

# Stops every server block's process group (SIGTERM, then SIGKILL after 10 s).
stop_servers() {
    local pid
    while read -r pid; do
        [ -n "$pid" ] || continue
        if kill -0 -- "-$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 -- "-$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 -- "-$pid" 2>/dev/null; then
                say "server block (process group $pid) did not stop on SIGTERM; killing it"
                kill -KILL -- "-$pid" 2>/dev/null || true
            fi
            say "stopped the server block (process group $pid)"
        fi
    done <"$PIDS"
}

cleanup() {
    stop_servers
    if [ -n "${KEEP_README_CHECK:-}" ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Read README.md into a script -----------------------------------------------------

SCRIPT="$TMP/readme.sh"
cat >"$SCRIPT" <<'PREAMBLE'
set -euo pipefail
__out="$__tmp/segment.out"
__line=0
: >"$__out"
# The failure report goes to the script's own stderr (fd 4): a command that fails
# inside a segment exits while the segment's output is still redirected to $__out.
exec 4>&2
trap '__rc=$?; if [ "$__rc" -ne 0 ]; then
    printf "readme: FAILED at README.md:%s (exit status %s); its output:\n" "$__line" "$__rc" >&4
    cat "$__out" >&4
    if [ -s "$__tmp/server.log" ]; then
        printf "readme: last lines of the server log:\n" >&4
        tail -n 20 "$__tmp/server.log" >&4
    fi
fi' EXIT

# Prints the output of the last segment, ending with a newline.
__show() {
    cat "$__out"
    if [ -s "$__out" ] && [ "$(tail -c 1 "$__out" | od -An -c | tr -d ' ')" != '\n' ]; then
        echo
    fi
}

# The output of the last segment must contain $2 ("..." stands for anything).
__expect() {
    local line=$1 want=$2 got pattern rest piece
    got="$(cat "$__out")"
    pattern=""
    rest="$want"
    while :; do
        piece="${rest%%...*}"
        # Every character but letters and digits is taken literally.
        pattern+="$(printf '%s' "$piece" | sed 's/[^[:alnum:]]/\\&/g')"
        [[ "$rest" == *...* ]] || break
        rest="${rest#*...}"
        pattern+='*'
    done
    # shellcheck disable=SC2053
    if [[ "$got" != *$pattern* ]]; then
        __line=$line
        printf "readme: README.md:%s: the output does not contain: %s\n" "$line" "$want" >&2
        return 1
    fi
}

# Starts a server block in the background, in a process group of its own, and waits
# for GET $BASE/health.
__server() {
    local file=$1 line=$2 pid waited=0
    __line=$line
    printf "readme: README.md:%s: starting the server block in the background\n" "$line" >&2
    setsid bash -c 'set -euo pipefail; . "$1"' server-block "$file" >>"$__tmp/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >>"$__tmp/server.pids"
    until curl -fsS -o /dev/null --max-time 2 "$BASE/health" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            printf "readme: README.md:%s: the server block exited before GET /health answered\n" "$line" >&2
            cp "$__tmp/server.log" "$__out"
            return 1
        fi
        if [ "$waited" -ge $((${README_CHECK_STARTUP_TIMEOUT:-120} * 10)) ]; then
            printf "readme: README.md:%s: GET %s/health did not answer within %ss\n" \
                "$line" "$BASE" "${README_CHECK_STARTUP_TIMEOUT:-120}" >&2
            cp "$__tmp/server.log" "$__out"
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    printf "readme: GET %s/health answered\n" "$BASE" >&2
}
PREAMBLE

blocks=0 checked=0 skipped=0 servers=0 expectations=0
in_block=false kind="" block_line=0 lineno=0
segment="" segment_line=0 pending_expect=false

# Ends the segment being read: its commands, then its expectations.
flush_segment() {
    # A segment of blank lines and comments only is no command (and `{ }` would not parse).
    if printf '%s' "$segment" | grep -qv -e '^[[:space:]]*$' -e '^[[:space:]]*#'; then
        {
            printf '__line=%s\n{\n%s} >"$__out" 2>&1\n__show\n' "$segment_line" "$segment"
        } >>"$SCRIPT"
    fi
    segment=""
}

while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    if ! $in_block; then
        if [[ "$line" =~ ^\`\`\`[[:space:]]*(sh|bash|shell|console|zsh)([[:space:]]+(.*))?$ ]]; then
            lang="${BASH_REMATCH[1]}"
            words="${BASH_REMATCH[3]}"
            words="${words%"${words##*[![:space:]]}"}"
            if [ "$lang" != sh ]; then
                say "README.md:$lineno: fence a shell block as \`\`\`sh (with 'server' or 'skip' after it if need be), not \`\`\`$lang"
                exit 2
            fi
            case "$words" in
                "") kind=run ;;
                server) kind=server ;;
                skip) kind=skip ;;
                *)
                    say "README.md:$lineno: unknown word(s) after \`\`\`sh: '$words' (use server or skip)"
                    exit 2
                    ;;
            esac
            in_block=true
            block_line=$lineno
            blocks=$((blocks + 1))
            segment=""
            segment_line=$((lineno + 1))
            pending_expect=false
            case "$kind" in
                server) : >"$TMP/server-$block_line.sh" ;;
                run) printf '\n# README.md:%s\n' "$block_line" >>"$SCRIPT" ;;
            esac
        fi
        continue
    fi
    if [[ "$line" =~ ^\`\`\`[[:space:]]*$ ]]; then
        in_block=false
        case "$kind" in
            run)
                flush_segment
                checked=$((checked + 1))
                ;;
            server)
                printf '__server %q %s\n' "$TMP/server-$block_line.sh" "$block_line" >>"$SCRIPT"
                servers=$((servers + 1))
                ;;
            skip)
                printf 'printf "readme: README.md:%s: block skipped\\n" >&2\n' "$block_line" >>"$SCRIPT"
                skipped=$((skipped + 1))
                ;;
        esac
        continue
    fi
    case "$kind" in
        server) printf '%s\n' "$line" >>"$TMP/server-$block_line.sh" ;;
        skip) ;;
        run)
            if [[ "$line" =~ ^[[:space:]]*#\ =\>\ (.*)$ ]]; then
                want="${BASH_REMATCH[1]}"
                if ! $pending_expect; then
                    if [ -z "$segment" ]; then
                        say "README.md:$lineno: a '# =>' line with no command before it"
                        exit 2
                    fi
                    flush_segment
                fi
                printf '__expect %s %q\n' "$lineno" "$want" >>"$SCRIPT"
                expectations=$((expectations + 1))
                pending_expect=true
            else
                if $pending_expect || [ -z "$segment" ]; then
                    segment_line=$lineno
                fi
                pending_expect=false
                segment+="$line"$'\n'
            fi
            ;;
    esac
done <"$README"

if $in_block; then
    say "README.md:$block_line: the block is not closed"
    exit 2
fi
if [ "$servers" -eq 0 ] || [ "$checked" -eq 0 ]; then
    say "README.md has no \`\`\`sh server block or no \`\`\`sh block to run; nothing to check"
    exit 2
fi
say "$blocks shell blocks: $checked to run ($expectations expected outputs), $servers server, $skipped skipped"

# --- Run it ---------------------------------------------------------------------------

timeout --kill-after=10 "${README_CHECK_BUILD_TIMEOUT:-900}" bash -c \
    '. "$1/scripts/lib/server.sh"; SERVER_LOG_PREFIX=readme server_build' _ "$ROOT" </dev/null

PORT="$(server_free_port)"
printf 'max-time = 30\n' >"$TMP/.curlrc"
mkdir -p "$TMP/data"
say "running the blocks against http://127.0.0.1:$PORT (SQLite in $TMP)"

status=0
env PORT="$PORT" BASE="http://127.0.0.1:$PORT" METRICS_ADDR="127.0.0.1:$(server_free_port)" \
    DATABASE_URL="$TMP/data/readme.db" DATA_DIR="$TMP/data" \
    CURL_HOME="$TMP" __tmp="$TMP" \
    timeout --kill-after=10 "${README_CHECK_TIMEOUT:-240}" bash "$SCRIPT" </dev/null || status=$?

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    say "FAILED: the blocks did not finish within ${README_CHECK_TIMEOUT:-240}s"
fi
if [ "$status" -ne 0 ]; then
    say "FAILED (exit status $status)"
    exit "$status"
fi
say "README.md's commands all worked"
