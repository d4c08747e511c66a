#!/usr/bin/env bash
# Fuzzes the running service against its own OpenAPI document with schemathesis (PyPI): every route,
# authenticated as a freshly registered user; fails on any 5xx, any status code the route does not
# document, any response whose content type or body does not match the documented one. Builds the debug
# binary, runs it on a temporary SQLite + embedded store, stops it.
#
#   scripts/schemathesis.sh [extra schemathesis run options]
#
# SCHEMATHESIS_MAX_EXAMPLES (default 25) bounds the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/service.sh

if ! command -v schemathesis >/dev/null; then
  say "installing schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis
  hash -r
fi
schemathesis --version

# Fuzzed logins fail on purpose: the limiter must not turn the run into 429s (429 is documented anyway).
# Every provider's token endpoint is a local stand-in that answers with working tokens
# (scripts/lib/fake_token_server.py): the fuzzer never reaches a real provider, and credentials that must
# be minted first (azure, tailscale, aws) are served as in a healthy deployment.
start_token_stand_in
overrides=()
for id in $(grep -o 'id: "[a-z0-9_]*"' src/providers/catalog.rs | cut -d'"' -f2); do
  upper="$(echo "$id" | tr '[:lower:]' '[:upper:]')"
  overrides+=("TOKENKEEPER_${upper}_TOKEN_URL=$token_url/token")
  overrides+=("TOKENKEEPER_${upper}_CLIENT_ID=fuzz-client-$id" "TOKENKEEPER_${upper}_CLIENT_SECRET=fuzz-client-secret")
done
start_service \
  "TOKENKEEPER_INTERNAL_SECRET=schemathesis-internal-secret-$RANDOM$RANDOM" \
  TOKENKEEPER_RATE_LIMIT_MAX_FAILURES=1000000 TOKENKEEPER_LOG_FORMAT=json \
  "${overrides[@]}" AZURE_AUTHORITY_HOST="$token_url" AWS_ENDPOINT_URL_STS="$token_url" \
  AWS_ACCESS_KEY_ID=AKIDEXAMPLETESTONLY AWS_SECRET_ACCESS_KEY=schemathesis-only

say "registering a user"
email="fuzz-$RANDOM$RANDOM@example.com"
password="fuzz-password-$RANDOM$RANDOM"
curl -fsS -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\",\"name\":\"Fuzz\"}" "$base/api/auth/register" >/dev/null
login() {
  curl -fsS -H 'Content-Type: application/json' -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
    "$base/api/auth/login" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

# Connect every provider with its documented example (the PUT examples of /openapi.json), so the fuzzer
# reaches stored credentials (read, refresh, delete) and not only 404s; first check that every example
# matches its provider's body schema. A mismatch, or an example the service does not store (any answer but
# 200), fails the run.
seed() {
  python3 - "$base" "$1" <<'PY'
import json, sys, urllib.error, urllib.request
import jsonschema_rs  # installed with schemathesis
base, token = sys.argv[1], sys.argv[2]
doc = json.load(urllib.request.urlopen(base + "/openapi.json"))
put = doc["paths"]["/api/tokens/{provider}"]["put"]
ids = next(p["schema"]["enum"] for p in put["parameters"] if p["name"] == "provider")
examples = put["requestBody"]["content"]["application/json"]["examples"]
schemas = doc["components"]["schemas"]
mismatches = refused = 0
for pid in ids:
    # Every example of the provider's body schema matches it, patterns included (tests/api/openapi.rs checks
    # the rest, without a regex engine), and so does the JSON text a `contentSchema` describes.
    schema = schemas[f"TokenBody_{pid}"]
    for shape in schema.get("oneOf", [schema]):
        for example in shape["examples"]:
            errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(example)]
            for name, value in example.items():
                for alternative in shape["properties"][name].get("oneOf", []):
                    if "contentSchema" in alternative and isinstance(value, str):
                        inner = jsonschema_rs.validator_for(alternative["contentSchema"])
                        errors += [f"{name}: {e}" for e in inner.iter_errors(json.loads(value))]
            for error in errors:
                mismatches += 1
                print(f"  TokenBody_{pid}: an example does not match: {error}"[:300], file=sys.stderr)
    body = json.dumps(examples[pid]["value"]).encode()
    req = urllib.request.Request(f"{base}/api/tokens/{pid}", data=body, method="PUT",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        status, answer = urllib.request.urlopen(req).status, ""
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read().decode(errors="replace")[:300]
    print(f"  PUT /api/tokens/{pid}: {status}")
    if status != 200:
        refused += 1
        print(f"  PUT /api/tokens/{pid}: the documented example was not stored: {status} {answer}", file=sys.stderr)
sys.exit(1 if mismatches or refused else 0)
PY
}

# From the temporary directory: schemathesis keeps caches (.schemathesis/) in the working directory, and
# reads its schemathesis.toml there. `?check=true` is never sent: this run has no network, so a check of a
# user-given URL (Grafana's, Splunk's, ...) could only end in 502 "could not reach"; the checks are tested
# against stand-ins of every provider in tests/api/checks.rs. POST .../check still runs (it answers 200).
printf '[parameters]\n"query.check" = false\n' >"$data/schemathesis.toml"
run() {
  (cd "$data" && schemathesis run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    --generation-database none \
    "$@")
}

status=0
# Logout ends the session it is called with: every other operation first, then logout on its own session.
token=$(login)
say "connecting every provider with its example credential"
seed "$token"
say "schemathesis: every operation but logout"
run -H "Authorization: Bearer $token" --exclude-path /api/auth/logout "$@" || status=1
say "schemathesis: logout"
run -H "Authorization: Bearer $(login)" --include-path /api/auth/logout "$@" || status=1

# How far the fuzzing got on the storing path: the PUT /api/tokens/* answers by status, and the 200s by path
# (the seeding above accounts for one 200 per catalog example).
say "PUT /api/tokens/* answers"
python3 - "$log" <<'PY'
import collections, json, sys
by_status, stored = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    span, status = event.get("span") or {}, (event.get("fields") or {}).get("status")
    if span.get("method") == "PUT" and span.get("path", "").startswith("/api/tokens/") and status:
        by_status[status] += 1
        stored[span["path"]] += status == 200
print("  by status:", ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
print("  200 by path:", ", ".join(f"{p.rsplit('/', 1)[1]} {n}" for p, n in sorted(stored.items()) if n))
PY

if ! kill -0 "$pid" 2>/dev/null; then
  echo "tokenkeeper died during the run" >&2
  status=1
fi
if grep -q '"status":5[0-9][0-9]' "$log"; then
  echo "the service answered a 5xx:" >&2
  grep '"status":5[0-9][0-9]' "$log" | tail -20 >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  say "FAILED; last lines of the service log:"
  tail -40 "$log" >&2
fi
exit "$status"
