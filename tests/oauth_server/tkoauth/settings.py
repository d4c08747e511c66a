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
    "oauth2_provider",
    "tkoauth",
]
MIDDLEWARE = ["tkoauth.stats.StatsMiddleware"]

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
    "SCOPES": {"read": "Read", "write": "Write"},
    "DEFAULT_SCOPES": ["read"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
