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

cmd=${1:-}
shift || true
case "$cmd" in
    demo)
        ensure_venv
        exec "$VENV/bin/yekuo" demo "$@"
        ;;
    test)
        ensure_venv
        set +e
        "$VENV/bin/python" -m pytest "$@"
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
        exec "$VENV/bin/yekuo" "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo | test [pytest args] | yekuo ARGS..." >&2
        exit 2
        ;;
esac
