#!/usr/bin/env bash
# Sets up Vault (or OpenBao) AppRole authentication for Tokenkeeper, least privilege:
#   1. enables the AppRole auth method at auth/approle (if it is not enabled yet),
#   2. writes the policy "tokenkeeper" from deploy/vault-policy.hcl,
#   3. creates (or updates) the role "tokenkeeper" bound to that policy only:
#      token_ttl=1h, token_max_ttl=24h, secret_id_ttl=0 (secret ids do not expire; rotate them yourself),
#   4. reads the role id and generates a new secret id.
#
# Usage:
#   VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=<admin token> deploy/approle-setup.sh [OUTPUT_FILE]
#
# With OUTPUT_FILE, writes `VAULT_ROLE_ID=...` and `VAULT_SECRET_ID=...` there (mode 0600, usable as a systemd
# EnvironmentFile or with `set -a; . OUTPUT_FILE`) and prints only the role id. Without it, prints both
# lines on stdout. Re-running is safe: the method, policy and role are updated in place, the role id stays
# the same, and a further secret id is generated (earlier ones stay valid until you destroy them).
#
# Optional environment:
#   VAULT_NAMESPACE, VAULT_CACERT   passed on to Vault (Enterprise namespace, private CA)
#   POLICY_FILE                     default: vault-policy.hcl next to this script (KV v2 mount "aurora",
#                                   base path "users"; for other mounts use `tokenkeeper vault-policy`)
#   POLICY_NAME, ROLE_NAME          default: tokenkeeper
#   APPROLE_CLIENT                  auto (default: `bao`, else `vault`, else curl), bao, vault or curl
#
# Needs the admin token to be allowed: sys/auth (read, and sudo to enable), sys/policies/acl/*,
# auth/approle/role/*.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-}"
policy_file="${POLICY_FILE:-$here/vault-policy.hcl}"
policy_name="${POLICY_NAME:-tokenkeeper}"
role="${ROLE_NAME:-tokenkeeper}"
client="${APPROLE_CLIENT:-auto}"

die() { printf 'approle-setup: %s\n' "$*" >&2; exit 1; }

[ -n "${VAULT_ADDR:-}" ] || die "VAULT_ADDR is not set"
[ -n "${VAULT_TOKEN:-}" ] || die "VAULT_TOKEN (an admin token) is not set"
[ -r "$policy_file" ] || die "policy file $policy_file is not readable"
VAULT_ADDR="${VAULT_ADDR%/}"

if [ "$client" = auto ]; then
  if command -v bao >/dev/null 2>&1; then client=bao
  elif command -v vault >/dev/null 2>&1; then client=vault
  elif command -v curl >/dev/null 2>&1; then client=curl
  else die "none of bao, vault or curl is installed"
  fi
fi
command -v "$client" >/dev/null 2>&1 || die "$client is not installed"

# ---- CLI (bao or vault) -------------------------------------------------------------------------
cli() {
  if [ "$client" = bao ]; then
    # OpenBao's CLI reads BAO_*; older releases also read VAULT_*.
    BAO_ADDR="$VAULT_ADDR" BAO_TOKEN="$VAULT_TOKEN" BAO_NAMESPACE="${VAULT_NAMESPACE:-}" \
      BAO_CACERT="${VAULT_CACERT:-}" bao "$@"
  else
    vault "$@"
  fi
}

setup_with_cli() {
  # The list is captured before it is searched: in a pipeline, `grep -q` stops reading at the first match,
  # the CLI can then die of SIGPIPE, and pipefail would take that for "not enabled".
  local methods
  methods="$(cli auth list -format=json)" || die "cannot list the auth methods at $VAULT_ADDR"
  if ! grep -q '"approle/"' <<<"$methods"; then
    echo "enabling the AppRole auth method at auth/approle" >&2
    cli auth enable approle >/dev/null
  fi
  cli policy write "$policy_name" "$policy_file" >/dev/null
  cli write "auth/approle/role/$role" \
    token_policies="$policy_name" token_ttl=1h token_max_ttl=24h \
    secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
  role_id="$(cli read -field=role_id "auth/approle/role/$role/role-id")"
  secret_id="$(cli write -f -field=secret_id "auth/approle/role/$role/secret-id")"
}

# ---- HTTP API with curl -------------------------------------------------------------------------
body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT

# api METHOD PATH [JSON]: the response body is left in $body_file; fails unless the status is 2xx.
api() {
  local method="$1" path="$2" data="${3:-}" status
  local args=(-sS -o "$body_file" -w '%{http_code}' -X "$method" -H "X-Vault-Token: $VAULT_TOKEN")
  [ -n "${VAULT_NAMESPACE:-}" ] && args+=(-H "X-Vault-Namespace: $VAULT_NAMESPACE")
  [ -n "${VAULT_CACERT:-}" ] && args+=(--cacert "$VAULT_CACERT")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  status="$(curl "${args[@]}" "$VAULT_ADDR/v1/$path")" || die "$method $path: cannot reach $VAULT_ADDR"
  case "$status" in
    2??) ;;
    *) die "$method $path: HTTP $status: $(head -c 500 "$body_file")" ;;
  esac
}

# A JSON string literal of stdin (backslash, quote, tab, newline escaped; the policy holds nothing else).
json_string() {
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | awk 'BEGIN { printf "\"" } { printf "%s\\n", $0 } END { printf "\"" }'
}

# The string value of "key" in the last response (compact JSON; ids hold no quotes or backslashes).
field() {
  # sed stops at the first match itself (no `| head`, whose early exit would be an error under pipefail).
  sed -n "s/.*\"$1\":[[:space:]]*\"\([^\"]*\)\".*/\1/p;T;q" "$body_file"
}

setup_with_curl() {
  api GET sys/auth
  if ! grep -q '"approle/"' "$body_file"; then
    echo "enabling the AppRole auth method at auth/approle" >&2
    api POST sys/auth/approle '{"type":"approle"}'
  fi
  api PUT "sys/policies/acl/$policy_name" "{\"policy\":$(json_string <"$policy_file")}"
  api POST "auth/approle/role/$role" \
    "{\"token_policies\":[\"$policy_name\"],\"token_ttl\":\"1h\",\"token_max_ttl\":\"24h\",\"secret_id_ttl\":0,\"secret_id_num_uses\":0}"
  api GET "auth/approle/role/$role/role-id"
  role_id="$(field role_id)"
  api POST "auth/approle/role/$role/secret-id" '{}'
  secret_id="$(field secret_id)"
  : >"$body_file" # the secret id is not left behind in a temporary file
}

role_id="" secret_id=""
echo "setting up AppRole role \"$role\" with policy \"$policy_name\" at $VAULT_ADDR (using $client)" >&2
case "$client" in
  bao|vault) setup_with_cli ;;
  curl) setup_with_curl ;;
  *) die "APPROLE_CLIENT must be auto, bao, vault or curl (got $client)" ;;
esac
[ -n "$role_id" ] || die "no role_id in the answer"
[ -n "$secret_id" ] || die "no secret_id in the answer"

if [ -n "$out" ]; then
  (
    umask 077
    tmp="$out.tmp.$$"
    printf 'VAULT_ROLE_ID=%s\nVAULT_SECRET_ID=%s\n' "$role_id" "$secret_id" >"$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$out"
  )
  echo "VAULT_ROLE_ID=$role_id"
  echo "wrote VAULT_ROLE_ID and VAULT_SECRET_ID to $out (mode 0600)" >&2
else
  printf 'VAULT_ROLE_ID=%s\nVAULT_SECRET_ID=%s\n' "$role_id" "$secret_id"
fi
