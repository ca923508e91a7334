#!/usr/bin/env bash
# Production start: install exactly what the lockfile pins if needed, build what is stale, run.
# Usage: scripts/start.sh            (settings from the environment or .env; see .env.example)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
node scripts/build-if-stale.mjs
export NODE_ENV="${NODE_ENV:-production}"
exec node --max-semi-space-size=1 dist/server/main.js
