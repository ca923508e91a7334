#!/usr/bin/env bash
# Removes what builds, tests and benchmarks leave behind. Models you added stay; the generated
# demo model goes only with --models (it is written again at the next start).
# Usage: scripts/cleanup.sh [--models] [--logs]
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist dashboard/dist coverage artifacts bench-results
for arg in "$@"; do
  case "$arg" in
    --models) rm -f models/demo.gguf models/*.gguf.tmp-* ;;
    --logs) rm -rf logs ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
echo "cleaned"
