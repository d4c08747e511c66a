# Sourced by the scripts that start servers on loopback (scripts/*.sh, benches/credentials/run.sh).
#
#   free_port [pair]                    a free loopback port; with `pair`, its successor is free too
#                                       (OpenBao's dev server puts its cluster listener on port + 1)
#   wait_http URL [SECONDS] [PID] [HEADER]
#                                       waits up to SECONDS (default 60) for a 200 from URL; returns 1
#                                       at once if process PID exits, or at the deadline

free_port() {
  python3 - "$@" <<'PY'
import socket, sys
pair = len(sys.argv) > 1
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    if not pair:
        s.close(); print(port); break
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", port + 1)); t.close(); s.close(); print(port); break
    except OSError:
        s.close(); t.close()
else:
    sys.exit("no free port found")
PY
}

wait_http() {
  local url="$1" secs="${2:-60}" pid="${3:-}" hdr="${4:-X-Nothing: 1}"
  for _ in $(seq $((secs * 10))); do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "the process serving $url exited" >&2
      return 1
    fi
    curl -fs -o /dev/null -H "$hdr" "$url" && return 0
    sleep 0.1
  done
  echo "$url did not answer 200 within ${secs}s" >&2
  return 1
}
