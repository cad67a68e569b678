#!/usr/bin/env bash
# The hot path's HTTP budget (DESIGN.md): a warm GET /memory/context against the same
# server's /healthz, both measured with wrk. Prints each run and the median ratio.
#   scripts/wrk-hotpath.sh [DURATION=8s] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8s}
CONNECTIONS=${2:-32}
PORT=${MEMLAYER_WRK_PORT:-8091}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

make -s install services >/dev/null
export MEMLAYER_DATABASE_URL=${MEMLAYER_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/memlayer_wrk}
export MEMLAYER_REDIS_URL=${MEMLAYER_REDIS_URL:-redis://127.0.0.1:6379/0}
export MEMLAYER_CACHE_KEY_PREFIX=memlayer-wrk-$(date +%s)
export MEMLAYER_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
export MEMLAYER_LOG_LEVEL=WARNING
# One login and then GETs: no abuse limit is in the way (failed logins, registrations and
# anonymous starts are the limited doors), so the limits stay at their defaults.
work=$(mktemp -d /tmp/memlayer-wrk.XXXXXX)
db=$(python3 -c "import sys; print(sys.argv[1].rsplit('/', 1)[1])" "$MEMLAYER_DATABASE_URL")
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" postgres
.venv/bin/memlayer migrate >/dev/null
.venv/bin/memlayer seed --users 10 --memories 5 --out "$work/credentials.csv" >/dev/null 2>&1

.venv/bin/memlayer serve --port "$PORT" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
email=$(sed -n 2p "$work/credentials.csv" | cut -d, -f1)
token=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\": \"$email\", \"password\": \"loadtest-password\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/memory/context" >/dev/null  # warm

rate() { wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" | awk '/Requests\/sec/ {print $2}'; }
ratios=()
printf '  %-5s %14s %22s %8s\n' run "/healthz req/s" "/memory/context req/s" ratio
for run in 1 2 3; do
  health=$(rate "http://127.0.0.1:$PORT/healthz")
  context=$(rate -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/memory/context")
  ratio=$(python3 -c "print(f'{$context / $health:.2f}')")
  ratios+=("$ratio")
  printf '  %-5s %14s %22s %8s\n' "$run" "$health" "$context" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 2p)
echo "  median ratio /memory/context ÷ /healthz: $median (target ≥ 0.60 with the near-cache, issue 14; ≥ 0.40 without)"
curl -s "http://127.0.0.1:$PORT/api/v1/ops/summary" | python3 -c 'import json, sys; s = json.load(sys.stdin); print("  cache requests:", s["cache_requests"], " served by tier:", s.get("tier_shares"), " db queries:", s["db_queries_total"])'
