#!/usr/bin/env bash
# System packages some tests need beyond Python: promtool (Debian `prometheus`, checks the
# alert rules) (the browser tests install their own in e2e-deps.sh). Installed only when missing.
#
# Debian's prometheus package starts a Prometheus server on install; the tests need only
# promtool. This script never stops processes by name: it keeps the package from starting
# anything (policy-rc.d), and if a policy already in place let it start the server anyway,
# it stops exactly what this install started (the PID the package's init script wrote, or
# the unit systemd started), nothing that was running before.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  # Exit 101 = "action forbidden": the package's maintainer scripts start no service.
  printf '#!/bin/sh\n# memlayer scripts/test-deps.sh: no service starts during its install\nexit 101\n' \
    >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

pidfile=/run/prometheus/prometheus.pid
had_pid=""
[ -s "$pidfile" ] && had_pid="$(cat "$pidfile")"
unit_was_active=no
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  unit_was_active=yes
fi

echo "test-deps: installing ${missing[*]} (once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

if [ -s "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if [ "$pid" != "$had_pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "test-deps: stopping the Prometheus server the package started (pid $pid)"
    kill "$pid"
  fi
fi
if [ "$unit_was_active" = no ] && command -v systemctl >/dev/null 2>&1 \
  && systemctl is-active --quiet prometheus 2>/dev/null; then
  echo "test-deps: stopping the prometheus unit the package started"
  systemctl stop prometheus
fi
command -v promtool >/dev/null 2>&1 || {
  echo "test-deps: promtool is still missing after installing ${missing[*]}" >&2
  exit 1
}
