#!/usr/bin/env bash
# Sets up and runs every test: formatting, lints, unit and integration tests (real sandboxed
# Python, the 678 golden APPS verdicts, the security suite).
set -euo pipefail
cd "$(dirname "$0")/.."
CODEPLAN_SKIP_BUILD=1 scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
