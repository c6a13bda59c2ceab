# shellcheck shell=bash
# ensure_venv DIR: a Python virtualenv at DIR, reused while its interpreter still works,
# else (re)created with $PYTHON (default python3). Callers define log().
ensure_venv() {
    local venv="$1"
    if "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        return 0
    fi
    log "creating virtualenv in ${venv#"$ROOT"/}"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "${PYTHON:-python3}" -m venv "$venv" || {
        log "ERROR: '${PYTHON:-python3} -m venv' failed (on Debian's own python3: apt-get install -y python3-venv)"
        exit 1
    }
}
