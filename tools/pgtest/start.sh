#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (the Debian package's binaries) on
# 127.0.0.1:$PGTEST_PORT in a fresh data directory, creates database lgx, and
# prints the connection URL on stdout (diagnostics go to stderr). Stop it with
# tools/pgtest/stop.sh DATADIR, or: pg_ctl -D DATADIR stop.
#
#   eval "$(tools/pgtest/start.sh)"   # sets LGX_TEST_POSTGRES and PGTEST_DATA
#
# A fixed port below 32768 stays clear of the ephemeral range, which is busy on
# shared machines. If any step fails the half-started server is stopped and
# its data directory removed, and the script exits non-zero saying why.
set -euo pipefail

port="${PGTEST_PORT:-25432}"

bindir=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "pgtest: initdb not found; installing postgresql" >&2
    apt-get install -y postgresql >&2
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir="$d"; done
  fi
  [ -n "$bindir" ] || { echo "pgtest: initdb not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2; exit 1; }
fi

# PostgreSQL refuses to run as root: run its tools as the postgres user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

data="$(mktemp -d /tmp/lgx-pgtest.XXXXXX)"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
chmod 700 "$data"
log="$data/server.log"

fail() {
  echo "pgtest: $*" >&2
  [ -f "$log" ] && tail -n 20 "$log" >&2
  as_pg "$bindir/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$data"
  exit 1
}

as_pg "$bindir/initdb" -D "$data/db" -U postgres --auth=trust --no-sync -E UTF8 >"$data/initdb.log" 2>&1 ||
  { cat "$data/initdb.log" >&2; fail "initdb failed"; }
# Sockets in the data dir (not /var/run/postgresql, which may not exist);
# TCP on loopback only; fsync off: a test server's data is thrown away.
as_pg "$bindir/pg_ctl" -D "$data/db" -l "$log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >&2 || fail "server did not start on 127.0.0.1:$port (port in use? set PGTEST_PORT)"
as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres lgx >&2 || fail "createdb failed"

echo "export PGTEST_DATA='$data'"
echo "export PGTEST_BIN='$bindir'"
echo "export LGX_TEST_POSTGRES='postgres://postgres@127.0.0.1:$port/lgx?sslmode=disable'"
