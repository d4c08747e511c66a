# Sourced by the scripts that check a running service (examples, schemathesis): builds the debug binary
# and runs it on a free loopback port with a temporary SQLite + embedded store, stopped on exit.
#
#   start_service [VAR=value ...]   sets $base (http://127.0.0.1:PORT), $pid, $log; extra settings as arguments
#   start_token_stand_in            scripts/lib/fake_token_server.py (every provider's token endpoint) on a
#                                   free port; sets $token_url, $token_pid; stopped with the service

# shellcheck source=scripts/lib/net.sh
. "$(dirname "${BASH_SOURCE[0]}")/net.sh"

say() { printf '\n== %s\n' "$*"; }

stop_service() {
  if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "${token_pid:-}" ]; then kill "$token_pid" 2>/dev/null || true; fi
  rm -rf "${data:-}"
}

start_service() {
  say "cargo build"
  cargo build --quiet --bin tokenkeeper
  local port
  port=$(free_port)
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
    # Stores do not ask the providers first: these scripts run offline, with example credentials.
    export TOKENKEEPER_CHECK_ON_STORE=false
    for setting in "$@"; do export "${setting?}"; done
    exec "${CARGO_TARGET_DIR:-target}/debug/tokenkeeper" serve
  ) >"$log" 2>&1 &
  pid=$!
  wait_http "$base/healthz" 20 "$pid" && return 0
  tail -40 "$log" >&2
  echo "tokenkeeper did not answer /healthz" >&2
  exit 1
}

start_token_stand_in() {
  local port
  port=$(free_port)
  python3 "$(dirname "${BASH_SOURCE[0]}")/fake_token_server.py" "$port" &
  token_pid=$!
  token_url="http://127.0.0.1:$port"
  trap stop_service EXIT
  # The stand-in answers POST only.
  for _ in $(seq 100); do
    curl -fs -o /dev/null -X POST "$token_url/token" && return 0
    sleep 0.1
  done
  echo "the token endpoint stand-in did not start" >&2
  exit 1
}
