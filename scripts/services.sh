#!/usr/bin/env bash
# Make sure the local Postgres and Redis that the integration tests use are running.
# Starts them when they are down; fails loudly (never skips) when it cannot.
set -euo pipefail

pg_ok() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if [ -n "${MEMLAYER_TEST_DATABASE_URL:-}" ] || [ -n "${MEMLAYER_TEST_REDIS_URL:-}" ]; then
  echo "services: using MEMLAYER_TEST_DATABASE_URL / MEMLAYER_TEST_REDIS_URL as given"
fi

if [ -z "${MEMLAYER_TEST_DATABASE_URL:-}" ] && ! pg_ok; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 50); do pg_ok && break; sleep 0.2; done
  fi
  pg_ok || {
    echo "services: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started." >&2
    echo "          Install it (apt-get install postgresql) or set MEMLAYER_TEST_DATABASE_URL." >&2
    exit 1
  }
fi

if [ -z "${MEMLAYER_TEST_REDIS_URL:-}" ] && ! redis_ok; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 50); do redis_ok && break; sleep 0.2; done
  fi
  redis_ok || {
    echo "services: Redis is not reachable on 127.0.0.1:6379 and could not be started." >&2
    echo "          Install it (apt-get install redis-server) or set MEMLAYER_TEST_REDIS_URL." >&2
    exit 1
  }
fi
echo "services: PostgreSQL and Redis are up"
