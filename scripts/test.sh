#!/usr/bin/env bash
# Sets up and runs every test: formatting, lints, unit and integration tests (real sandboxed
# Python, the 678 golden APPS verdicts, the security suite, the real smollm2-135m model against
# llama.cpp's recorded output, a real HTTP server driven by reqwest and the official `openai`
# Python client).
set -euo pipefail
cd "$(dirname "$0")/.."
CODEPLAN_SKIP_BUILD=1 scripts/setup.sh

PYTHON="${CODEPLAN_PYTHON:-python3}"
OPENAI_VERSION="3.57.0"  # a second, independent client for the server tests
if ! "$PYTHON" -c "import openai" >/dev/null 2>&1; then
  echo "test: installing openai==$OPENAI_VERSION" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages "openai==$OPENAI_VERSION"
fi

# Model-dependent tests fail (instead of skipping) if the fetched model is missing.
export CODEPLAN_REQUIRE_MODELS=smollm2-135m
# A test run builds once: incremental caches would only double the build's disk footprint.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
