"""The load tools' data: the bench database, Django set up against it, users with tokens in bulk."""

import os
import sys
import time

from bench.harness import environment
from bench.processes import ROOT


def django_setup():
    os.environ.update(environment())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imserver.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_database():
    """Creates the bench database on the PostgreSQL server if it is missing."""
    import psycopg

    url = environment()["DATABASE_URL"]
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed_users(count, prefix, refresh=True):
    """`count` users with access tokens, created in bulk (one password hash for all of them);
    refresh=False skips the refresh tokens' outstanding-token rows (faster for thousands)."""
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User
    from accounts.tokens import VERSION_CLAIM, token_pair_for

    tag = f"{prefix}{int(time.time() * 1000) % 10**9:x}"
    password = make_password("Bench-password-1")
    users = User.objects.bulk_create(
        [
            User(username=f"{tag}_{i}", email=f"{tag}_{i}@bench.invalid", nickname=f"U{i}", password=password)
            for i in range(count)
        ]
    )
    if not refresh:
        tokens = []
        for user in users:
            token = AccessToken.for_user(user)
            token[VERSION_CLAIM] = user.token_version
            tokens.append(str(token))
        return list(zip(users, tokens, strict=True))
    return [(user, token_pair_for(user)["token"]) for user in users]


def analyze():
    """Vacuums and analyzes the tables a bench writes to, after seeding and before measuring:
    fresh planner statistics, and autovacuum not triggered in the middle of a measurement by
    the rows the seeding (or a previous tool) inserted."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("accounts_user", "chat_conversation", "chat_membership", "chat_message",
                          "chat_mention", "chat_reaction", "chat_messagehidden",
                          "realtime_eventstream", "realtime_eventpayload", "realtime_userevent"):  # fmt: skip
                cursor.execute(f"VACUUM ANALYZE {table}")
