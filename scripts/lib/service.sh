# Sourced by the scripts that check a running service (examples, schemathesis): builds the debug binary
# and runs it on a free loopback port with a temporary SQLite + embedded store, stopped on exit.
#
#   start_service [VAR=value ...]   sets $base (http://127.0.0.1:PORT), $pid, $log; extra settings as arguments

say() { printf '\n== %s\n' "$*"; }

stop_service() {
  if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "${data:-}"
}

start_service() {
  say "cargo build"
  cargo build --quiet --bin tokenkeeper
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  base="http://127.0.0.1:$port"
  data=$(mktemp -d)
  log="$data/tokenkeeper.log"
  pid=""
  trap stop_service EXIT
  say "starting tokenkeeper on $base"
  (
    unset DATABASE_URL VAULT_ADDR VAULT_TOKEN
    export TOKENKEEPER_DATA_DIR="$data" TOKENKEEPER_LISTEN="127.0.0.1:$port"
    export TOKENKEEPER_BCRYPT_COST=10 TOKENKEEPER_REFRESHER_DISABLED=true
    for setting in "$@"; do export "${setting?}"; done
    exec target/debug/tokenkeeper serve
  ) >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "tokenkeeper exited" >&2; exit 1; fi
    sleep 0.2
  done
  tail -40 "$log" >&2
  echo "tokenkeeper did not answer /healthz" >&2
  exit 1
}
