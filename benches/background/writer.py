"""The background writer of benches/background/run.sh: PUT /api/tokens/datadog (internal header pair) at a
steady RATE per second, cycling over USERS users writer-0.., until SIGTERM; then prints "WRITES ok failed".
Eight threads with a connection each take the writes in turn, each at its scheduled time, so a slow answer
delays no other write: the rate stays the same whatever the server's latency.

Usage: python3 writer.py BASE_URL SECRET RATE USERS
"""
import http.client
import signal
import sys
import threading
import time
import urllib.parse

base, secret, rate, users = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
url = urllib.parse.urlsplit(base)
stop = threading.Event()
lock = threading.Lock()
state = {"next": 0, "ok": 0, "failed": 0}
start = time.monotonic()


def worker():
    conn = None
    while not stop.is_set():
        with lock:
            i = state["next"]
            state["next"] += 1
        wait = start + i / rate - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        body = '{"api_key":"%032x","app_key":"%040x"}' % (i, i)
        headers = {"X-User-ID": f"writer-{i % users}", "X-Internal-Secret": secret,
                   "Content-Type": "application/json"}
        try:
            conn = conn or http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            conn.request("PUT", "/api/tokens/datadog", body, headers)
            res = conn.getresponse()
            res.read()
            ok = 200 <= res.status < 300
        except (OSError, http.client.HTTPException):
            ok, conn = False, None
        with lock:
            state["ok" if ok else "failed"] += 1


signal.signal(signal.SIGTERM, lambda *_: stop.set())
threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
for t in threads:
    t.start()
while not stop.is_set():
    time.sleep(0.2)
for t in threads:
    t.join(timeout=11)
print(f"WRITES {state['ok']} {state['failed']}", flush=True)
