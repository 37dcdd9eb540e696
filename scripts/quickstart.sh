#!/usr/bin/env bash
# The main job on the bundled data: set up (Python + numpy, the release build, the models), then
# run the bundled experiment examples/quickstart.toml — a local teacher (qwen2.5-coder-0.5b)
# writes validated plans for MBPP training problems, the student (smollm2-135m) is trained
# code-only (baseline) and on code + plans (CodePLAN), both are sampled and judged in the sandbox
# on held-out MBPP problems — and print the comparison table and the report's path.
# Rerunning reuses every finished stage; a killed run resumes. Extra arguments go to `codeplan
# run` (e.g. --dry-run, --set generate.n=10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${CARGO_TARGET_DIR:-target}/release/codeplan" run examples/quickstart.toml "$@"
