#!/usr/bin/env python3
"""Test-only OAuth2 server (django-oauth-toolkit) for Tokenkeeper's refresh tests. Never deploy this.

    TK_OAUTH_DB=/tmp/x/db.sqlite3 python manage.py migrate --noinput
    TK_OAUTH_DB=/tmp/x/db.sqlite3 python manage.py runserver 127.0.0.1:PORT --noreload
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tkoauth.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
