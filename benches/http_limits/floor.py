"""Memory per connection of any HTTP server (a benchmark, not a test): starts the server command given as
arguments (every `{port}` in them replaced by a free port on 127.0.0.1), reads its RSS (`VmRSS`) alone, after
10,000 keep-alive connections that each had one `GET /healthz` answered, and after 2,000 more that sent half a
request header, and prints the cost per connection of each kind. For comparing Tokenkeeper with a bare axum
server (benches/README.md, "The floor: a bare axum server"):

  python3 benches/http_limits/floor.py /tmp/bare-hyper/bare-mimalloc {port}          # axum::serve
  python3 benches/http_limits/floor.py /tmp/bare-hyper/bare-mimalloc {port} http1    # Tokenkeeper's hyper loop
  python3 benches/http_limits/floor.py env -u DATABASE_URL -u VAULT_ADDR TOKENKEEPER_LISTEN=127.0.0.1:{port} \\
      TOKENKEEPER_DATA_DIR=$(mktemp -d) TOKENKEEPER_HTTP_HEADER_TIMEOUT_SECS=90 TOKENKEEPER_MAX_CONNECTIONS=20000 \\
      TOKENKEEPER_REFRESHER_DISABLED=true RUST_LOG=warn /work/targets/tk-release-39c026f serve

Knobs: BENCH_IDLE (10000), BENCH_SLOW (2000), BENCH_SETTLE (2, seconds to wait before each RSS reading so the
server has read what was sent). The server must keep idle and half-header connections open for as long as the
opening takes (about a minute); the script counts how many are still open at the end and says so. Raises its own
`ulimit -n` (and the server's) to IDLE + SLOW + 200 if the hard limit allows.
"""

import os
import resource
import socket
import subprocess
import sys
import time

IDLE = int(os.environ.get("BENCH_IDLE", "10000"))
SLOW = int(os.environ.get("BENCH_SLOW", "2000"))
SETTLE = float(os.environ.get("BENCH_SETTLE", "2"))
if len(sys.argv) < 2:
    sys.exit(__doc__)

need = IDLE + SLOW + 200
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < need:
    if hard < need:
        sys.exit(f"ulimit -n is {hard}; {need} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
addr = probe.getsockname()
probe.close()
command = [a.replace("{port}", str(addr[1])) for a in sys.argv[1:]]
server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (need, need)))


def rss_mb():
    time.sleep(SETTLE)
    with open(f"/proc/{server.pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024


def healthz(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "server closed the connection"
        head += chunk
    assert b" 200 " in head.split(b"\r\n", 1)[0], head


def still_open(socks):
    count = 0
    for s in socks:
        s.setblocking(False)
        try:
            count += s.recv(1) != b""
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


try:
    for _ in range(300):
        try:
            healthz(socket.create_connection(addr, timeout=1))
            break
        except (OSError, AssertionError):
            time.sleep(0.1)
    else:
        sys.exit("server did not answer GET /healthz")
    rss_alone = rss_mb()
    t_open = time.time()
    idle = []
    for _ in range(IDLE):
        s = socket.create_connection(addr)
        idle.append(s)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
    for s in idle:
        assert b" 200 " in s.recv(4096)
    rss_idle = rss_mb()
    slow = []
    for _ in range(SLOW):
        s = socket.create_connection(addr)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Never: ")
        slow.append(s)
    rss_slow = rss_mb()
    opened = time.time() - t_open
    open_idle, open_slow = still_open(idle), still_open(slow)
    print(f"RSS: {rss_alone:.1f} MB alone, {rss_idle:.1f} MB with {IDLE} idle, {rss_slow:.1f} MB with {SLOW} slow more")
    print(f"per connection: {(rss_idle - rss_alone) * 1024 / IDLE:.1f} KB idle (one request answered), "
          f"{(rss_slow - rss_idle) * 1024 / SLOW:.1f} KB slow (half a header)")
    print(f"still open at the end: {open_idle} of {IDLE} idle, {open_slow} of {SLOW} slow "
          f"[{'PASS' if (open_idle, open_slow) == (IDLE, SLOW) else 'FAIL: figures understated'}]; "
          f"opening took {opened:.1f} s; server: {' '.join(command)}")
finally:
    server.terminate()
    server.wait()
