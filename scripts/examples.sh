#!/usr/bin/env bash
# Runs the README's client examples (examples/js/tokenkeeper.mjs with Node's fetch, and
# examples/python/tokenkeeper_example.py with requests) against a live service: builds the debug binary,
# starts it on a free loopback port with a temporary SQLite + embedded store, runs both, stops it.
# Fails if either example fails.
#
#   scripts/examples.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/service.sh

command -v node >/dev/null || { echo "node (20 or later) is needed for examples/js" >&2; exit 1; }
if ! python3 -c 'import requests' 2>/dev/null; then
  say "installing requests"
  python3 -m pip install --quiet --disable-pip-version-check requests
fi

# A Slack app's client id, so that the examples' connect call gets a consent URL (nothing is sent to Slack).
start_service TOKENKEEPER_SLACK_CLIENT_ID=example-slack-client

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
