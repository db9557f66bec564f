#!/usr/bin/env bash
# Builds tools/devtemporal (cached) and starts a throwaway Temporal dev server
# on 127.0.0.1:$DEVTEMPORAL_PORT (default 17233; it also binds the next 7
# ports) with a fresh data directory. Prints shell exports on stdout
# (diagnostics go to stderr). Stop it with tools/devtemporal/stop.sh DATADIR.
#
#   eval "$(tools/devtemporal/start.sh)"  # sets LGX_TEST_TEMPORAL, DEVTEMPORAL_DATA, DEVTEMPORAL_PID, DEVTEMPORAL_BIN
#
# A test that kills the server can restart it on the same data:
#   "$DEVTEMPORAL_BIN" -data "$DEVTEMPORAL_DATA" -port PORT  (it rewrites DATA/pid)
#
# The binary goes to ${XDG_CACHE_HOME:-$HOME/.cache}/lgx-ci/devtemporal; the
# first build compiles the server's ~200 modules (minutes, ~2.6 GB of compiler
# memory), later ones hit Go's build cache. Set DEVTEMPORAL_GOFLAGS=-p=1 to
# compile one package at a time where memory is short. If any step fails, the
# half-started server is stopped, its data directory removed, and the script
# exits non-zero saying why.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
port="${DEVTEMPORAL_PORT:-17233}"
wait_s="${DEVTEMPORAL_WAIT:-60}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lgx-ci/devtemporal"
bin="$cache/devtemporal"

mkdir -p "$cache"
t0=$(date +%s)
# Its own module: GOWORK=off keeps a go.work elsewhere from pulling it into
# the main module's build list (or the other way round).
if ! (cd "$here" && GOWORK=off GOFLAGS="${GOFLAGS:-} ${DEVTEMPORAL_GOFLAGS:-}" go build -trimpath -buildvcs=false -o "$bin" .) >&2; then
  echo "devtemporal: build failed (see above)" >&2
  exit 1
fi
echo "devtemporal: built $bin in $(( $(date +%s) - t0 ))s" >&2

data="$(mktemp -d /tmp/lgx-devtemporal.XXXXXX)"
log="$data/temporal.log"
out="$data/stderr.log"
pid=""

fail() {
  echo "devtemporal: $*" >&2
  for f in "$out" "$log"; do
    [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
  done
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
  exit 1
}

t0=$(date +%s)
# stdin/stdout/stderr away from the caller: $(start.sh) would otherwise wait
# for the server to close the pipe, i.e. forever. setsid: a Ctrl-C in the
# caller's terminal does not reach it; stop.sh does.
setsid "$bin" -data "$data" -port "$port" -log-file "$log" </dev/null >"$out" 2>&1 &
pid=$!

# The server writes DATA/ready once the frontend serves the namespaces.
deadline=$(( $(date +%s) + wait_s ))
until [ -f "$data/ready" ]; do
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null && rc=0 || rc=$?; pid=""; fail "server exited (status $rc) before it was ready on 127.0.0.1:$port (ports in use? set DEVTEMPORAL_PORT)"; }
  [ "$(date +%s)" -lt "$deadline" ] || fail "server not ready on 127.0.0.1:$port after ${wait_s}s (DEVTEMPORAL_WAIT)"
  sleep 0.2
done
# Belt and braces: the frontend accepts a TCP connection from here.
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "ready file written but 127.0.0.1:$port refuses connections"
echo "devtemporal: pid $pid ready on 127.0.0.1:$port in $(( $(date +%s) - t0 ))s, data $data" >&2

echo "export DEVTEMPORAL_DATA='$data'"
echo "export DEVTEMPORAL_PID='$pid'"
echo "export DEVTEMPORAL_BIN='$bin'"
echo "export LGX_TEST_TEMPORAL='127.0.0.1:$port'"
