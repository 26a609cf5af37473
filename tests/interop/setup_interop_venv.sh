#!/usr/bin/env bash
# Creates the virtualenv that holds pyln-proto, Core Lightning's independent BOLT 8 implementation,
# for tests/interop.  It must stay apart from .venv: pyln-proto depends on a coincurve fork that
# installs over coincurve's own files.  Idempotent: a complete venv of the pinned version is kept.
#
#   tests/interop/setup_interop_venv.sh          # creates ./.venv-interop
#   INTEROP_VENV=/tmp/x PYTHON=python3.11 tests/interop/setup_interop_venv.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${INTEROP_VENV:-$ROOT/.venv-interop}"
PYTHON="${PYTHON:-python3}"
PYLN_PROTO_VERSION="26.6.9"
STAMP="$VENV/.pyln-proto-$PYLN_PROTO_VERSION"

imports() {
    "$VENV/bin/python" -c "import pyln.proto.message, pyln.proto.wire" >/dev/null 2>&1
}

if [ -f "$STAMP" ] && imports; then
    exit 0
fi

rm -rf "$VENV"
if ! "$PYTHON" -m venv "$VENV"; then
    echo "setup_interop_venv: '$PYTHON -m venv $VENV' failed" >&2
    exit 1
fi
LOG="$VENV/pip-install.log"
if ! "$VENV/bin/python" -m pip install --quiet "pyln-proto==$PYLN_PROTO_VERSION" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "setup_interop_venv: could not install pyln-proto $PYLN_PROTO_VERSION from the package index" >&2
    exit 1
fi
if ! imports; then
    echo "setup_interop_venv: pyln-proto $PYLN_PROTO_VERSION installed but does not import" >&2
    exit 1
fi
touch "$STAMP"
echo "interop venv ready: $VENV (pyln-proto $PYLN_PROTO_VERSION)"
