#!/usr/bin/env bash
# Copies a `codeplan run` folder's small outputs — the report, manifest, resolved experiment, and
# every stage's records, settings, plans, samples, verdicts, metrics and teacher ledger — into a
# folder meant for git, leaving out what is large and can be rebuilt (model exports, training
# checkpoints). Copied back into a run folder, the finished stages are found by their keys and
# a distill stage resumes from its ledger without asking the teacher again.
#
#   scripts/save-results.sh out/cpu-replication results/cpu-replication/run
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 RUN_DIR DEST_DIR" >&2
  exit 2
fi
run="$1"
dest="$2"
if [ ! -d "$run/stages" ]; then
  echo "save-results: $run is not a codeplan run folder (no stages/ in it)" >&2
  exit 1
fi
mkdir -p "$dest"
tar -C "$run" -cf - \
  --exclude='checkpoints' --exclude='*.gguf' --exclude='model' --exclude='adapter' \
  --exclude='*.safetensors' --exclude='*.tmp' --exclude='.lock' --exclude='.file-hashes.json' \
  . | tar -C "$dest" -xf -
du -sh "$dest" >&2
