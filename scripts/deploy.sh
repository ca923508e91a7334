#!/usr/bin/env bash
# Builds the container image and, with --run, (re)starts it on this host with the models folder mounted.
# Usage: scripts/deploy.sh [--run] [image tag]      (ADMIN_TOKEN must be set for --run)
set -euo pipefail
cd "$(dirname "$0")/.."
run=false
if [ "${1:-}" = "--run" ]; then run=true; shift; fi
tag="${1:-llm-stream:latest}"
docker build -f docker/Dockerfile -t "$tag" .
if $run; then
  : "${ADMIN_TOKEN:?set ADMIN_TOKEN}"
  docker rm -f llm-stream >/dev/null 2>&1 || true
  docker run -d --name llm-stream --restart unless-stopped --stop-timeout 30 \
    -p "${PORT:-8080}:8080" -e ADMIN_TOKEN -e KEYS_FILE -e ALLOWED_ORIGINS \
    -v "$PWD/models:/models" -v "$PWD/logs:/app/logs" "$tag"
  for _ in $(seq 1 60); do
    if curl -fs "http://127.0.0.1:${PORT:-8080}/readyz" >/dev/null; then echo "deployed $tag: ready"; exit 0; fi
    sleep 1
  done
  echo "deployed $tag but /readyz is not 200 after 60 s: docker logs llm-stream" >&2
  exit 1
fi
