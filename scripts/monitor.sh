#!/usr/bin/env bash
# Prints a line of live figures every few seconds from /readyz and /metrics.
# Usage: ADMIN_TOKEN=... scripts/monitor.sh [http://127.0.0.1:8080] [interval seconds]
set -uo pipefail
base="${1:-http://127.0.0.1:${PORT:-8080}}"
interval="${2:-5}"
token="${ADMIN_TOKEN:-$(cat .admin-token 2>/dev/null || true)}"
metric() { awk -v name="$1" '$1 ~ "^"name"({|$)" { sum += $2 } END { printf "%.0f", sum }' <<<"$2"; }
previous=""
while true; do
  ready=$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")
  metrics=$(curl -s -H "Authorization: Bearer $token" "$base/metrics")
  tokens=$(metric llm_generation_tokens_total "$metrics")
  rate="-"
  [ -n "$previous" ] && rate=$(( (tokens - previous) / interval ))
  previous=$tokens
  printf '%s ready=%s tokens/s=%s running=%s waiting=%s connections=%s rss=%sMB\n' \
    "$(date +%T)" "$ready" "$rate" "$(metric llm_requests_running "$metrics")" "$(metric llm_requests_waiting "$metrics")" \
    "$(metric llm_connections_open "$metrics")" "$(( $(metric process_resident_memory_bytes "$metrics") / 1048576 ))"
  sleep "$interval"
done
