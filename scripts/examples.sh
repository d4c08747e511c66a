#!/usr/bin/env bash
# Runs the README's client examples (examples/js/tokenkeeper.mjs with Node's fetch, and
# examples/python/tokenkeeper_example.py with requests) against a live service: builds the debug binary,
# starts it on a free loopback port with a temporary SQLite + embedded store, runs both, stops it.
# Fails if either example fails.
#
#   scripts/examples.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

command -v node >/dev/null || { echo "node (20 or later) is needed for examples/js" >&2; exit 1; }
if ! python3 -c 'import requests' 2>/dev/null; then
  say "installing requests"
  python3 -m pip install --quiet --disable-pip-version-check requests
fi

say "cargo build"
cargo build --quiet --bin tokenkeeper

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
data=$(mktemp -d)
log="$data/tokenkeeper.log"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

say "starting tokenkeeper on $base"
(
  export TOKENKEEPER_DATA_DIR="$data"
  export TOKENKEEPER_LISTEN="127.0.0.1:$port"
  export TOKENKEEPER_BCRYPT_COST=10
  export TOKENKEEPER_REFRESHER_DISABLED=true
  unset DATABASE_URL VAULT_ADDR VAULT_TOKEN
  exec target/debug/tokenkeeper serve
) >"$log" 2>&1 &
pid=$!

for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "tokenkeeper exited" >&2; exit 1; fi
  sleep 0.2
done
if ! curl -fsS "$base/healthz" >/dev/null; then
  tail -40 "$log" >&2; echo "tokenkeeper did not answer /healthz" >&2; exit 1
fi

status=0
say "JavaScript (node $(node --version)): examples/js/tokenkeeper.mjs"
TOKENKEEPER_URL="$base" timeout 300 node examples/js/tokenkeeper.mjs || status=1
say "Python (requests): examples/python/tokenkeeper_example.py"
TOKENKEEPER_URL="$base" timeout 300 python3 examples/python/tokenkeeper_example.py || status=1

if ! kill -0 "$pid" 2>/dev/null; then
  echo "tokenkeeper died during the run" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  say "FAILED; last lines of the service log:"
  tail -40 "$log" >&2
fi
exit "$status"
