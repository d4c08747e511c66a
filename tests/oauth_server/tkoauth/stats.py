"""Test-only instrumentation of the OAuth2 server, per OAuth client (so that tests sharing one server do
not see each other's calls):

- POST /test/clients (form: grant=password|client-credentials|authorization-code, redirect_uri for the
  last) creates a confidential application with a known secret (and the test user) and returns
  {client_id, client_secret, username, password}.
- GET /test/login?next=... is a login form; POST /test/login (form: username, password, optional next) logs a
  browser in (a session cookie) and goes on to `next` when given: the login page of the
  authorization-code flow, whose consent page (/o/authorize/) follows.
- GET /test/stats?client_id=X returns, for that client: token_requests (calls to /o/token/), grants (per
  grant_type), refresh_ok / refresh_failed, errors (per `error` code), refresh_token_reuse (refresh-grant
  calls presenting a refresh token already presented before) and family_revocations (times reuse
  protection revoked the client's token family).

Never deploy this: it has no authentication.
"""
import base64
import hashlib
import json
import secrets
import threading
from collections import Counter, defaultdict
from urllib.parse import parse_qs, unquote_plus

from django.http import HttpResponseNotAllowed, JsonResponse

USERNAME = "tokenkeeper-test-user"
PASSWORD = "tokenkeeper-test-password"

_lock = threading.Lock()


def _new_stats():
    return {
        "token_requests": 0,
        "grants": Counter(),
        "refresh_ok": 0,
        "refresh_failed": 0,
        "errors": Counter(),
        "refresh_token_reuse": 0,
        "family_revocations": 0,
    }


_stats = defaultdict(_new_stats)
_seen_refresh_tokens = set()


def _client_id(request, form):
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Basic "):
        try:
            decoded = base64.b64decode(auth[6:]).decode()
            return unquote_plus(decoded.split(":", 1)[0])
        except Exception:
            return "?"
    return form.get("client_id", ["?"])[0]


class StatsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != "/o/token/":
            return self.get_response(request)
        form = parse_qs(request.body.decode("utf-8", "replace"))
        grant = form.get("grant_type", ["?"])[0]
        client = _client_id(request, form)
        with _lock:
            s = _stats[client]
            s["token_requests"] += 1
            s["grants"][grant] += 1
            if grant == "refresh_token":
                digest = hashlib.sha256(form.get("refresh_token", [""])[0].encode()).hexdigest()
                if digest in _seen_refresh_tokens:
                    s["refresh_token_reuse"] += 1
                _seen_refresh_tokens.add(digest)
        response = self.get_response(request)
        error = None
        if response.status_code != 200:
            try:
                error = json.loads(response.content).get("error")
            except Exception:
                error = "http_%d" % response.status_code
        with _lock:
            s = _stats[client]
            if grant == "refresh_token":
                s["refresh_ok" if response.status_code == 200 else "refresh_failed"] += 1
            if error:
                s["errors"][error] += 1
        return response


def install_revocation_counter():
    from oauth2_provider.models import get_refresh_token_model

    model = get_refresh_token_model()
    original = model.revoke_family.__func__

    def counting(cls, token_family):
        if token_family:
            rt = cls.objects.filter(token_family=token_family).select_related("application").first()
            client = rt.application.client_id if rt is not None and rt.application else "?"
            with _lock:
                _stats[client]["family_revocations"] += 1
        return original(cls, token_family)

    model.revoke_family = classmethod(counting)


def create_client(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    grant = request.POST.get("grant", Application.GRANT_PASSWORD)
    allowed = (Application.GRANT_PASSWORD, Application.GRANT_CLIENT_CREDENTIALS, Application.GRANT_AUTHORIZATION_CODE)
    if grant not in allowed:
        return JsonResponse({"error": "unsupported grant"}, status=400)
    user, created = get_user_model().objects.get_or_create(username=USERNAME)
    if created:
        user.set_password(PASSWORD)
        user.save()
    client_id = "tk-" + secrets.token_hex(8)
    client_secret = secrets.token_urlsafe(24)
    Application.objects.create(
        name=client_id,
        client_id=client_id,
        client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant,
        user=user,
        redirect_uris=request.POST.get("redirect_uri", ""),
        algorithm="",
    )
    return JsonResponse(
        {"client_id": client_id, "client_secret": client_secret, "username": USERNAME, "password": PASSWORD}
    )


def login_view(request):
    from django.contrib.auth import authenticate, login

    from django.http import HttpResponse, HttpResponseRedirect
    from django.utils.html import escape
    from django.utils.http import url_has_allowed_host_and_scheme

    if request.method == "GET":
        # Where the consent page sends a browser without a session: a login form (a real browser fills it
        # in, tests/browser); HTTP tests POST the form directly.
        nxt = escape(request.GET.get("next", ""))
        return HttpResponse(
            '<!doctype html><title>Log in</title><form method="post" action="/test/login">'
            f'<input type="hidden" name="next" value="{nxt}">'
            '<label>Username <input id="id_username" name="username"></label>'
            '<label>Password <input id="id_password" name="password" type="password"></label>'
            '<button id="login" type="submit">Log in</button></form>',
            status=401,
        )
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return JsonResponse({"error": "wrong username or password"}, status=403)
    login(request, user)
    nxt = request.POST.get("next")
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(nxt)
    return JsonResponse({"ok": True})


def get_stats(request):
    client = request.GET.get("client_id", "?")
    with _lock:
        s = _stats.get(client) or _new_stats()
        out = dict(s)
        out["grants"] = dict(s["grants"])
        out["errors"] = dict(s["errors"])
    return JsonResponse(out)
