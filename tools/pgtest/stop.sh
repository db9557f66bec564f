#!/usr/bin/env bash
# Stops a server started by tools/pgtest/start.sh and removes its data:
#   tools/pgtest/stop.sh "$PGTEST_DATA"
set -uo pipefail
data="${1:-${PGTEST_DATA:-}}"
[ -n "$data" ] && [ -d "$data" ] || exit 0
bindir="${PGTEST_BIN:-}"
if [ -z "$bindir" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bindir="$d"; done
fi
if [ "$(id -u)" = 0 ]; then
  runuser -u postgres -- "$bindir/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1
else
  "$bindir/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1
fi
rm -rf "$data"
