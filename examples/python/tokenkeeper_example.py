#!/usr/bin/env python3
"""Tokenkeeper from Python: every HTTP route in order, with the `requests` library.

    pip install requests
    TOKENKEEPER_URL=http://127.0.0.1:8080 python3 examples/python/tokenkeeper_example.py

Each step checks the status code and the key fields of the answer and prints one line; on any mismatch it
prints what it expected and what it got, and exits 1. CI runs it against a live service
(scripts/examples.sh).
"""

import os
import re
import sys
import urllib.parse
import uuid

try:
    import requests
except ImportError:
    sys.exit("this example needs the requests library: python3 -m pip install requests")

B = os.environ.get("TOKENKEEPER_URL", "http://127.0.0.1:8080").rstrip("/")
TIMEOUT = 30  # seconds, per request

email = f"py-example-{uuid.uuid4().hex[:12]}@example.com"
password = "correct horse battery"
new_password = "another good one"
api_key = "glsa_exampleExampleExample_0123abcd"
base_url = "https://example.grafana.net"
token = None  # the Bearer session token from login
org_id = None  # the shared org the example creates
member_id = None  # the second user, added to it
member_email = email.replace("py-example-", "py-member-")


class Mismatch(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def expect_json(r, status):
    """The answer's JSON, once its status is the expected one."""
    check(r.status_code == status, f"expected HTTP {status}, got {r.status_code}: {r.text[:500]}")
    try:
        return r.json()
    except ValueError:
        raise Mismatch(f"expected a JSON body, got: {r.text[:500]}") from None


def expect_empty(r, status):
    check(r.status_code == status, f"expected HTTP {status}, got {r.status_code}: {r.text[:500]}")
    check(r.content == b"", f"expected an empty body, got: {r.text[:500]}")


def without_token(session):
    """A login answer for a failure message: the session token itself is never printed."""
    return {**session, "token": "<redacted>"} if session.get("token") else session


def check_connection(c):
    # First, so that the messages below may show the connection.
    check(api_key not in str(c), "the connection view must not contain the secret api_key")
    check(c.get("provider") == "grafana", f'provider should be "grafana": {c}')
    check(c.get("metadata", {}).get("base_url") == base_url, f"metadata.base_url should be {base_url}: {c}")
    # "active" once Grafana accepted the key; "unchecked" where the deployment stores without asking the
    # provider (TOKENKEEPER_CHECK_ON_STORE=false, as in this example's offline run).
    check(c.get("status") in ("active", "unchecked"), f'status should be "active" or "unchecked": {c}')


def register():
    r = requests.post(f"{B}/api/auth/register",
                      json={"email": email, "password": password, "name": "Ada"}, timeout=TIMEOUT)
    user = expect_json(r, 201)
    check(user.get("email") == email and user.get("name") == "Ada" and user.get("id"), f"unexpected user: {user}")
    return f"user {user['id']}"


def login():
    global token
    r = requests.post(f"{B}/api/auth/login", json={"email": email, "password": password}, timeout=TIMEOUT)
    session = expect_json(r, 200)
    check(str(session.get("token", "")).startswith("tks_"), f"token should start with tks_: {without_token(session)}")
    check(session.get("email") == email and session.get("expiresAt"), f"unexpected login answer: {without_token(session)}")
    token = session["token"]
    return f"session until {session['expiresAt']}"


def me():
    r = requests.get(f"{B}/api/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    user = expect_json(r, 200)
    check(user.get("email") == email, f"email should be {email}: {user}")
    check(user.get("passwordChangedAt", "missing") is None, f"passwordChangedAt should be null: {user}")
    return user["email"]


def change_password():
    r = requests.post(f"{B}/api/auth/change-password", headers={"Authorization": f"Bearer {token}"},
                      json={"currentPassword": password, "newPassword": new_password}, timeout=TIMEOUT)
    body = expect_json(r, 200)
    check(body.get("message") == "Password changed successfully", f"unexpected answer: {body}")
    return body["message"]


def login_new_password():
    global token
    r = requests.post(f"{B}/api/auth/login", json={"email": email, "password": new_password}, timeout=TIMEOUT)
    session = expect_json(r, 200)
    check(str(session.get("token", "")).startswith("tks_"), f"token should start with tks_: {without_token(session)}")
    token = session["token"]
    return "logged in with the new password"


def providers():
    r = requests.get(f"{B}/api/providers", timeout=TIMEOUT)
    catalog = expect_json(r, 200)["providers"]
    grafana = next((p for p in catalog if p["id"] == "grafana"), None)
    check(grafana is not None, "grafana should be in the catalog")
    check(grafana["refresh"] == "static", f'grafana should refresh "static": {grafana["refresh"]}')
    key = next((f for f in grafana["fields"] if f["name"] == "api_key"), {})
    check(key.get("secret") is True and key.get("required") is True, "grafana's api_key should be secret and required")
    return f"{len(catalog)} providers"


def store():
    r = requests.put(f"{B}/api/tokens/grafana", headers={"Authorization": f"Bearer {token}"},
                     json={"api_key": api_key, "base_url": base_url}, timeout=TIMEOUT)
    conn = expect_json(r, 200)
    check_connection(conn)
    check(conn.get("secretVersion") == 1, f"secretVersion should be 1: {conn.get('secretVersion')}")
    return f"stored at {conn['secretRef']}"


def list_connections():
    r = requests.get(f"{B}/api/tokens", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    connections = expect_json(r, 200)["connections"]
    check(len(connections) == 1, f"expected one connection: {connections}")
    check_connection(connections[0])
    return f"{len(connections)} connection"


def connection():
    r = requests.get(f"{B}/api/tokens/grafana", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    conn = expect_json(r, 200)
    check_connection(conn)
    return f"status {conn['status']}"


def credentials():
    r = requests.get(f"{B}/api/tokens/grafana/credentials", headers={"Authorization": f"Bearer {token}"},
                     timeout=TIMEOUT)
    body = expect_json(r, 200)
    check(r.headers.get("Cache-Control") == "no-store",
          f"Cache-Control should be no-store, got {r.headers.get('Cache-Control')}")
    check(body.get("provider") == "grafana", f"provider should be grafana: {body.get('provider')}")
    token_data = body.get("tokenData") or {}
    check(token_data.get("api_key") == api_key, "tokenData.api_key should be the stored key")
    check(token_data.get("base_url") == base_url, f"tokenData.base_url should be {base_url}: {token_data.get('base_url')}")
    return "api_key round-trips, Cache-Control: no-store"


def refresh():
    r = requests.post(f"{B}/api/tokens/grafana/refresh", headers={"Authorization": f"Bearer {token}"},
                      timeout=TIMEOUT)
    conn = expect_json(r, 200)
    check_connection(conn)  # static provider: answered as it is
    return f"status {conn['status']}"


def audit():
    r = requests.get(f"{B}/api/audit", params={"limit": 50}, headers={"Authorization": f"Bearer {token}"},
                     timeout=TIMEOUT)
    events = expect_json(r, 200)["events"]
    kinds = [e["kind"] for e in events]
    for kind in ["register", "login", "change_password", "credential_store", "credential_read"]:
        check(kind in kinds, f"audit should hold a {kind} event: {', '.join(kinds)}")
    ids = [e["id"] for e in events]
    check(ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), "events should be newest first")
    return f"{len(events)} events, newest {events[0]['kind']}"


def delete():
    r = requests.delete(f"{B}/api/tokens/grafana", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    # Grafana keys have no revocation at the provider: None (gcp and slack grants: True or False).
    revoked = expect_json(r, 200)["revoked"]
    check(revoked is None, f"revoked should be null for grafana: {revoked}")
    return "deleted"


def connection_deleted():
    r = requests.get(f"{B}/api/tokens/grafana", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    body = expect_json(r, 404)
    check(isinstance(body.get("error"), str) and body["error"], f'expected {{"error": ...}}: {body}')
    return body["error"]


def store_named():
    # Several connections per provider: each named one has its own id and secret.
    r = requests.put(f"{B}/api/tokens/grafana", params={"name": "staging"}, headers={"Authorization": f"Bearer {token}"},
                     json={"api_key": api_key, "base_url": base_url}, timeout=TIMEOUT)
    conn = expect_json(r, 200)
    check_connection(conn)
    check(conn.get("name") == "staging", f'name should be "staging": {conn.get("name")}')
    check(re.fullmatch(r"[0-9a-f]{32}", conn.get("id", "")) is not None, f"id should be 32 hex digits: {conn.get('id')}")
    check(conn["secretRef"].endswith("-grafana-staging-token"), f"its own secret: {conn['secretRef']}")
    return f"stored at {conn['secretRef']}"


def credentials_named():
    r = requests.get(f"{B}/api/tokens/grafana/credentials", params={"name": "staging"},
                     headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    body = expect_json(r, 200)
    check(body.get("name") == "staging" and body["tokenData"].get("api_key") == api_key, "the staging connection's key")
    bad = requests.get(f"{B}/api/tokens/grafana", params={"name": "Staging"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    return f"a bad name: {expect_json(bad, 400)['error']}"


def delete_named():
    r = requests.delete(f"{B}/api/tokens/grafana", params={"name": "staging"},
                        headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    check(expect_json(r, 200)["revoked"] is None, "nothing to revoke for grafana")
    return "deleted"


def connect_slack():
    # The "Connect Slack" button: the browser is sent to authorizationUrl, and comes back to returnUrl with
    # ?connected=slack&name=default once the user agreed on Slack's page.
    r = requests.post(f"{B}/api/connect/slack", headers={"Authorization": f"Bearer {token}"},
                      json={"returnUrl": f"{B}/settings"}, timeout=TIMEOUT)
    if r.status_code == 400:
        error = r.json()["error"]
        check("TOKENKEEPER_SLACK_CLIENT_ID" in error, f"unexpected 400: {error}")
        return f"this service has no Slack app: {error}"
    started = expect_json(r, 200)
    url = urllib.parse.urlsplit(started["authorizationUrl"])
    q = dict(urllib.parse.parse_qsl(url.query))
    check(url.netloc == "slack.com", f"Slack's consent page: {started['authorizationUrl']}")
    check(q.get("redirect_uri") == f"{B}/api/connect/callback", f"the callback: {q}")
    check(q.get("state") and q.get("code_challenge_method") == "S256", "state and PKCE")
    return f"consent at {url.netloc}{url.path} until {started['expiresAt']}"


def orgs():
    r = requests.get(f"{B}/api/orgs", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    found = expect_json(r, 200)["orgs"]
    check(len(found) == 1 and found[0]["personal"] and found[0]["role"] == "admin", f"one personal org: {found}")
    return f"personal org {found[0]['id']}"


def create_org():
    global org_id
    r = requests.post(f"{B}/api/orgs", headers={"Authorization": f"Bearer {token}"},
                      json={"name": "Platform team"}, timeout=TIMEOUT)
    org = expect_json(r, 201)
    check(org["role"] == "admin" and not org["personal"], f"the creator is admin: {org}")
    org_id = org["id"]
    return org_id


def store_in_org():
    in_org = {"Authorization": f"Bearer {token}", "X-Org-ID": org_id}
    r = requests.put(f"{B}/api/tokens/grafana", headers=in_org,
                     json={"api_key": api_key, "base_url": base_url}, timeout=TIMEOUT)
    check_connection(expect_json(r, 200))
    listed = expect_json(requests.get(f"{B}/api/tokens", headers=in_org, timeout=TIMEOUT), 200)["connections"]
    check(len(listed) == 1, f"one connection in the org: {listed}")
    return "stored in the org"


def add_member():
    global member_id
    r = requests.post(f"{B}/api/auth/register",
                      json={"email": member_email, "password": password, "name": "Bob"}, timeout=TIMEOUT)
    member_id = expect_json(r, 201)["id"]
    r = requests.post(f"{B}/api/orgs/{org_id}/members", headers={"Authorization": f"Bearer {token}"},
                      json={"email": member_email, "role": "viewer"}, timeout=TIMEOUT)
    member = expect_json(r, 201)
    check(member["userId"] == member_id and member["role"] == "viewer", f"the new member: {member}")
    return f"{member_email} is a viewer"


def set_role():
    r = requests.patch(f"{B}/api/orgs/{org_id}/members/{member_id}", headers={"Authorization": f"Bearer {token}"},
                       json={"role": "editor"}, timeout=TIMEOUT)
    member = expect_json(r, 200)
    check(member["role"] == "editor", f"the new role: {member}")
    return "now an editor"


def members():
    r = requests.get(f"{B}/api/orgs/{org_id}/members", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    found = expect_json(r, 200)["members"]
    check(len(found) == 2, f"two members: {found}")
    return ", ".join(f"{m['email']} ({m['role']})" for m in found)


def remove_member():
    r = requests.delete(f"{B}/api/orgs/{org_id}/members/{member_id}", headers={"Authorization": f"Bearer {token}"},
                        timeout=TIMEOUT)
    expect_empty(r, 204)
    return "removed"


def logout():
    r = requests.post(f"{B}/api/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    expect_empty(r, 204)
    after = requests.get(f"{B}/api/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    expect_json(after, 401)
    return "the session is refused afterwards"


def healthz():
    body = expect_json(requests.get(f"{B}/healthz", timeout=TIMEOUT), 200)
    check(body.get("status") == "ok", f'status should be "ok": {body}')
    return body["status"]


def readyz():
    body = expect_json(requests.get(f"{B}/readyz", timeout=TIMEOUT), 200)
    check(body.get("status") == "ready", f'status should be "ready": {body}')
    return body["status"]


def metrics():
    r = requests.get(f"{B}/metrics", timeout=TIMEOUT)
    check(r.status_code == 200, f"expected 200, got {r.status_code}")
    lines = [l for l in r.text.splitlines() if l.startswith("tokenkeeper_http_requests_total{")]
    check(lines, "no tokenkeeper_http_requests_total series")
    return "Prometheus text with request counters"


def openapi():
    doc = expect_json(requests.get(f"{B}/openapi.json", timeout=TIMEOUT), 200)
    paths = list(doc["paths"])
    check("/api/tokens/{provider}/credentials" in paths, f"paths: {paths}")
    return f"OpenAPI {doc['openapi']}, {len(paths)} paths"


STEPS = [
    ("POST /api/auth/register", register),
    ("POST /api/auth/login", login),
    ("GET /api/auth/me", me),
    ("POST /api/auth/change-password", change_password),
    ("POST /api/auth/login (new password)", login_new_password),
    ("GET /api/providers", providers),
    ("PUT /api/tokens/grafana", store),
    ("GET /api/tokens", list_connections),
    ("GET /api/tokens/grafana", connection),
    ("GET /api/tokens/grafana/credentials", credentials),
    ("POST /api/tokens/grafana/refresh", refresh),
    ("GET /api/audit", audit),
    ("DELETE /api/tokens/grafana", delete),
    ("GET /api/tokens/grafana (deleted)", connection_deleted),
    ("PUT /api/tokens/grafana?name=staging", store_named),
    ("GET /api/tokens/grafana/credentials?name=staging", credentials_named),
    ("DELETE /api/tokens/grafana?name=staging", delete_named),
    ("POST /api/connect/slack", connect_slack),
    ("GET /api/orgs", orgs),
    ("POST /api/orgs", create_org),
    ("PUT /api/tokens/grafana (X-Org-ID)", store_in_org),
    ("POST /api/orgs/{org}/members", add_member),
    ("PATCH /api/orgs/{org}/members/{user}", set_role),
    ("GET /api/orgs/{org}/members", members),
    ("DELETE /api/orgs/{org}/members/{user}", remove_member),
    ("POST /api/auth/logout", logout),
    ("GET /healthz", healthz),
    ("GET /readyz", readyz),
    ("GET /metrics", metrics),
    ("GET /openapi.json", openapi),
]


def main():
    print(f"Tokenkeeper Python example against {B}", flush=True)
    for name, run in STEPS:
        try:
            note = run()
        except Mismatch as e:
            print(f"FAIL  {name}: {e}", file=sys.stderr)
            return 1
        except requests.RequestException as e:
            print(f"FAIL  {name}: request failed: {e}", file=sys.stderr)
            return 1
        print(f"ok    {name}: {note}", flush=True)
    print(f"all {len(STEPS)} steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
