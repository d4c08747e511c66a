#!/usr/bin/env bash
# Runs every ```sh block of docs/API.md, in order, against a live service and checks each curl's status and
# each *Answer* against the document (scripts/lib/doc_snippets.py; the rules are in docs/TESTING.md). Builds
# the debug binary, runs it on a temporary SQLite + embedded store, with every provider's token endpoint a
# local stand-in, stops it. Fails on the first document that answers differently from what it says.
#
#   scripts/doc-snippets.sh [FILE.md ...]      (default: docs/API.md)
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/service.sh

if ! command -v jq >/dev/null; then # the documented commands use it
  say "installing jq"
  apt-get update -qq && apt-get install -y -qq jq >/dev/null
fi

start_token_stand_in
start_service TOKENKEEPER_GCP_TOKEN_URL="$token_url/token" \
  TOKENKEEPER_GCP_CLIENT_ID=doc-client TOKENKEEPER_GCP_CLIENT_SECRET=doc-client-secret \
  TOKENKEEPER_AWS_PRINCIPAL_ARN=arn:aws:iam::123456789012:role/tokenkeeper \
  TOKENKEEPER_AWS_TEMPLATE_URL=https://tk-templates.s3.amazonaws.com/tokenkeeper-aws-role.json

status=0
for doc in "${@:-docs/API.md}"; do
  say "$doc"
  timeout 300 python3 scripts/lib/doc_snippets.py "$base" "$doc" || status=1
done
if [ "$status" -ne 0 ]; then
  say "FAILED; last lines of the service log:"
  tail -20 "$log" >&2
fi
exit "$status"
