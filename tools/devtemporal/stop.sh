#!/usr/bin/env bash
# Stops a server started by tools/devtemporal/start.sh and removes its data:
#   tools/devtemporal/stop.sh "$DEVTEMPORAL_DATA"
# SIGTERM first (the server stops its services and exits), SIGKILL after 15s.
set -uo pipefail
data="${1:-${DEVTEMPORAL_DATA:-}}"
[ -n "$data" ] && [ -d "$data" ] || exit 0
pid="$(cat "$data/pid" 2>/dev/null || true)"
# Only signal the pid if it is still our server: pids get reused.
if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "devtemporal -data $data"; then
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "devtemporal: pid $pid ignored SIGTERM for 15s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$data"
