"""A stand-in for every provider's token endpoint, for runs against a live service without network
(scripts/schemathesis.sh, scripts/doc-snippets.sh; started by start_token_stand_in in scripts/lib/service.sh).

Answers each token request with a working token in the provider's format, so credentials that must be
minted before they can be handed out (azure, tailscale, aws, a GCP service-account key) are served, and
the fuzzer sees what a healthy deployment answers:
- a form with Action=AssumeRole (AWS STS): the AssumeRole XML, credentials valid for an hour;
- a form with Action=GetCallerIdentity (AWS STS): an IAM user of account 123456789012 (the principal AWS
  onboarding puts in its trust policy);
- anything else (OAuth2 token endpoints, Azure, Slack's oauth.v2.access): a JSON token valid for an
  hour, with `ok: true` for Slack and a new refresh token when one was presented.

Usage: python3 fake_token_server.py PORT
"""

import json
import sys
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

issued = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global issued
        issued += 1
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        if form.get("Action") == ["AssumeRole"]:
            expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = (
                '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
                "<Credentials><AccessKeyId>ASIAFAKEFUZZ%06d</AccessKeyId>"
                "<SecretAccessKey>fuzz-secret-access-key</SecretAccessKey><SessionToken>fuzz-session-token</SessionToken>"
                "<Expiration>%s</Expiration></Credentials>"
                "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/fuzz/fuzz</Arn>"
                "<AssumedRoleId>AROAFUZZ:fuzz</AssumedRoleId></AssumedRoleUser>"
                "</AssumeRoleResult></AssumeRoleResponse>" % (issued, expires)
            ).encode()
            content_type = "text/xml"
        elif form.get("Action") == ["GetCallerIdentity"]:
            body = (
                '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/tokenkeeper</Arn>"
                "<UserId>AIDAFUZZ</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
                "</GetCallerIdentityResponse>"
            ).encode()
            content_type = "text/xml"
        else:
            token = {"ok": True, "access_token": f"fuzz-access-token-{issued}", "expires_in": 3600,
                     "token_type": "Bearer"}
            if "refresh_token" in form:
                token["refresh_token"] = f"fuzz-refresh-token-{issued}"
            body = json.dumps(token).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
