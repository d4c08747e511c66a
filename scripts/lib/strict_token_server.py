"""A strict OAuth2 token endpoint for scripts/chaos.sh: refresh tokens rotate and are single use, and a
refresh token presented a second time revokes its whole grant (as providers with reuse detection do).

Each caller uses its own path, /<caller>/token (chaos.sh gives each Tokenkeeper instance its own), so
that a reuse can be traced to the instance that had received the token that superseded it.

  POST /<caller>/token      grant_type=refresh_token, refresh_token=..., client_id=...
       live token:          200, a new access token and a new refresh token, expires_in LIFETIME
       spent token:         400 invalid_grant; counted as a reuse; the grant is revoked
       revoked grant:       400 invalid_grant (not counted again)
  POST /admin/issue         body: the grant's first refresh token (made live)
  GET  /admin/stats         JSON: calls, rotations, reuses (each with who presented it, when, and which
                            caller had received the token that superseded it, when)

Usage: python3 strict_token_server.py PORT LIFETIME_SECS
"""

import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIFETIME = int(sys.argv[2])
lock = threading.Lock()
live = {}  # refresh token -> grant id
spent = {}  # refresh token -> (grant id, caller that received its successor, when)
revoked = set()
stats = {"calls": 0, "rotations": 0, "refused": 0, "reuses": []}


def refresh(caller, form):
    token = form.get("refresh_token", [""])[0]
    with lock:
        stats["calls"] += 1
        if token in live:
            grant = live.pop(token)
            stats["rotations"] += 1
            n = stats["rotations"]
            successor = f"{grant}.r{n}"
            live[successor] = grant
            spent[token] = (grant, caller, time.time())
            return 200, {
                "access_token": f"access-{grant}-{n}",
                "refresh_token": successor,
                "expires_in": LIFETIME,
                "token_type": "Bearer",
            }
        stats["refused"] += 1
        if token in spent:
            grant, superseded_by, superseded_at = spent[token]
            if grant not in revoked:
                revoked.add(grant)
                for t in [t for t, g in live.items() if g == grant]:
                    del live[t]
                stats["reuses"].append(
                    {
                        "grant": grant,
                        "presented_by": caller,
                        "at": time.time(),
                        "superseded_by": superseded_by,
                        "superseded_at": superseded_at,
                    }
                )
            return 400, {"error": "invalid_grant", "error_description": "refresh token reused: grant revoked"}
        return 400, {"error": "invalid_grant", "error_description": "unknown refresh token"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace")
        parts = self.path.strip("/").split("/")
        if parts == ["admin", "issue"]:
            with lock:
                live[body.strip()] = body.strip()
            return self.answer(200, {"issued": body.strip()})
        if len(parts) == 2 and parts[1] == "token":
            return self.answer(*refresh(parts[0], urllib.parse.parse_qs(body)))
        self.answer(404, {"error": "not_found"})

    def do_GET(self):
        if self.path == "/admin/stats":
            with lock:
                return self.answer(200, dict(stats, revoked=sorted(revoked)))
        self.answer(404, {"error": "not_found"})

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
