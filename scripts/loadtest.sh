#!/usr/bin/env bash
# A documented load run on this machine: seed, serve on real Postgres + Redis, warm the
# cache, run Locust headless, print its summary, the service's hit ratio per tier and the
# Redis commands per chat turn (INFO commandstats before and after), stop.
#   scripts/loadtest.sh [USERS=300] [RUN_TIME=60s] [SEED_USERS=1000]
# Uses a database of its own (memlayer_loadtest on the local server), its own key prefix, and
# (unless MEMLAYER_REDIS_URL is set) a redis-server of its own, so the commands counted are
# this run's alone. Compare the near-cache on and off: MEMLAYER_NEAR_CACHE_ENABLED=false.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${1:-300}
RUN_TIME=${2:-60s}
SEED_USERS=${3:-1000}
PORT=${MEMLAYER_LOADTEST_PORT:-8090}
WORK=${MEMLAYER_LOADTEST_DIR:-$(mktemp -d /tmp/memlayer-loadtest.XXXXXX)}

make -s install services >/dev/null
export MEMLAYER_DATABASE_URL=${MEMLAYER_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/memlayer_loadtest}
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
if [ -z "${MEMLAYER_REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server), or set MEMLAYER_REDIS_URL" >&2; exit 1; }
  redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export MEMLAYER_REDIS_URL=redis://127.0.0.1:$redis_port/0
  echo "loadtest: redis-server of its own on :$redis_port (pid ${pids[0]})"
fi
# A prefix of its own per run: the database is new, so nothing cached before may be served.
export MEMLAYER_CACHE_KEY_PREFIX=${MEMLAYER_CACHE_KEY_PREFIX:-memlayer-loadtest-$(date +%s)}
export MEMLAYER_JWT_SECRET=${MEMLAYER_JWT_SECRET:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')}
export MEMLAYER_LOG_LEVEL=${MEMLAYER_LOG_LEVEL:-WARNING}
# Every Locust user comes from 127.0.0.1: the per-address abuse limits on registration and
# anonymous starts would refuse most NewUser and AnonymousUser sessions at their defaults.
export MEMLAYER_RATE_LIMIT_REGISTER=${MEMLAYER_RATE_LIMIT_REGISTER:-1000000/minute}
export MEMLAYER_RATE_LIMIT_ANONYMOUS_START=${MEMLAYER_RATE_LIMIT_ANONYMOUS_START:-1000000/minute}

db=$(python3 -c "import sys; print(sys.argv[1].rsplit('/', 1)[1])" "$MEMLAYER_DATABASE_URL")
echo "loadtest: fresh database $db, $SEED_USERS seeded users, $USERS Locust users for $RUN_TIME"
echo "loadtest: abuse limits raised for one client address: register $MEMLAYER_RATE_LIMIT_REGISTER, anonymous start $MEMLAYER_RATE_LIMIT_ANONYMOUS_START"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" postgres
.venv/bin/memlayer migrate >/dev/null
.venv/bin/memlayer seed --users "$SEED_USERS" --memories 5 --out "$WORK/credentials.csv"

.venv/bin/memlayer serve --port "$PORT" >"$WORK/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
.venv/bin/memlayer cache warm --top "$SEED_USERS"

.venv/bin/python loadtests/smoke.py --host "http://127.0.0.1:$PORT" -u "$USERS" \
  -r "$(( USERS / 5 > 1 ? USERS / 5 : 1 ))" -t "$RUN_TIME" \
  --credentials "$WORK/credentials.csv" --workdir "$WORK" --redis-url "$MEMLAYER_REDIS_URL"
echo
echo "loadtest: service summary (/api/v1/ops/summary)"
curl -s "http://127.0.0.1:$PORT/api/v1/ops/summary" | python3 -m json.tool
echo "loadtest: files in $WORK"
