#!/usr/bin/env bash
# The main job on the bundled data: set up, then judge every bundled problem's reference
# solution in the sandbox (APPS with the reference semantics, HumanEval and MBPP strictly)
# and print each dataset's health and scores. Outputs go to out/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bin=target/release/codeplan
$bin data check --data data/apps/train.jsonl --judge apps --out out/quickstart/apps-train
$bin data check --data data/humaneval/HumanEval.jsonl.gz --out out/quickstart/humaneval
$bin data check --data data/mbpp/mbpp_sanitized.jsonl --out out/quickstart/mbpp
echo "Reports: out/quickstart/*/health.md and summary.md"
