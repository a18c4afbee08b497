#!/usr/bin/env bash
# One entry point for a fresh machine with only Python 3.11 and pip:
#   ./dev.sh demo   set up, start the whole stack on embedded defaults and walk sample cases through it
#   ./dev.sh test   set up and run the test suite (what .ci/run calls)
#   ./dev.sh yekuo ARGS...   any yekuo command inside the project's virtual environment
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${YEKUO_VENV:-.venv}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed since the last install.
    local stamp="$VENV/.yekuo-installed" want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
        echo "$want" > "$stamp"
    fi
}

# The dashboard's browser-side library (Apache ECharts, pinned in package.json and package-lock.json) comes
# from npm into node_modules/ (git-ignored); the API serves it from there.
ensure_node_modules() {
    local stamp="node_modules/.yekuo-installed" want
    want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        if ! command -v npm >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
            else
                echo "dev.sh: npm is needed for the dashboard's charts (e.g. apt-get install -y nodejs npm)" >&2
                exit 1
            fi
        fi
        npm ci --no-audit --no-fund --loglevel=error
        echo "$want" > "$stamp"
    fi
}

# The browser tests and `yekuo dashboard screenshots` drive Debian's chromium (with CJK fonts for the labels).
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk
    else
        echo "dev.sh: the browser tests need chromium and CJK fonts: apt-get install -y chromium fonts-noto-cjk" >&2
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    demo)
        ensure_venv
        ensure_node_modules
        exec "$VENV/bin/yekuo" demo "$@"
        ;;
    test)
        ensure_venv
        ensure_node_modules
        ensure_chromium
        # Two pytest processes, each with its own PostgreSQL and broker: most integration tests wait on
        # restarts and timeouts, so two halve the wall time even on two cores. YEKUO_TEST_WORKERS=0 runs
        # in one process; arguments after `test` still go to pytest (`-n 0` works too).
        set +e
        "$VENV/bin/python" -m pytest -n "${YEKUO_TEST_WORKERS:-2}" --dist worksteal "$@"
        rc=$?
        set -e
        if [ "$rc" -eq 5 ]; then
            echo "dev.sh: pytest collected no tests; that is a failure, not a pass" >&2
            exit 1
        fi
        exit "$rc"
        ;;
    yekuo)
        ensure_venv
        ensure_node_modules
        if [ "${1:-}" = dashboard ]; then ensure_chromium; fi
        exec "$VENV/bin/yekuo" "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo | test [pytest args] | yekuo ARGS..." >&2
        exit 2
        ;;
esac
