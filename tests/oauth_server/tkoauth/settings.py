"""Settings of the test-only OAuth2 server. Environment:

- TK_OAUTH_DB: SQLite file (required; the harness puts it in a temporary directory).
- TK_OAUTH_ACCESS_TOKEN_SECONDS: access-token lifetime (default 300).
"""
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "tokenkeeper-test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tkoauth.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "tkoauth",
]
# Sessions, CSRF and login: the authorization-code flow's consent page is a browser's, as in production.
MIDDLEWARE = [
    "tkoauth.stats.StatsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
LOGIN_URL = "/test/login"
STATIC_URL = "/static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["TK_OAUTH_DB"],
        # Threaded runserver: concurrent token requests. Write transactions take SQLite's write lock up
        # front (BEGIN IMMEDIATE) and wait for it, instead of failing with "database is locked" on upgrade.
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

# Client secrets and the test user's password are hashed with Django's hashers; the default PBKDF2
# would cost ~0.5 s per token request. Test-only server: fast and insecure is right here.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

OAUTH2_PROVIDER = {
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("TK_OAUTH_ACCESS_TOKEN_SECONDS", "300")),
    # Google's scope too: connect flows ask for the catalog's default scopes.
    "SCOPES": {"read": "Read", "write": "Write", "https://www.googleapis.com/auth/cloud-platform": "Cloud"},
    "DEFAULT_SCOPES": ["read"],
    # Authorization code requests without a code_challenge are refused: the tests prove Tokenkeeper sends one.
    "PKCE_REQUIRED": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
