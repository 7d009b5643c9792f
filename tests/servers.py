"""Real daphne processes for tests that cross process boundaries (cluster, faults), on the
harness the load tools use too (bench/processes.py)."""

import os
import subprocess
import sys

import httpx
import pytest
from django.db import connection

from bench.processes import ROOT, ServerProcess, free_port, server_command

__all__ = ["ROOT", "Server", "cluster_marks", "database_address", "free_port", "register", "test_database_url"]


def cluster_marks(reason):
    """The marks of a test whose server processes share state through PostgreSQL and Redis."""
    return [
        pytest.mark.django_db(transaction=True),
        pytest.mark.cluster,
        pytest.mark.skipif(
            not (connection.vendor == "postgresql" and os.environ.get("REDIS_URL")),
            reason=f"{reason} (set DATABASE_URL and REDIS_URL)",
        ),
    ]


def database_address():
    """(host, port) of the database the test run uses."""
    db = connection.settings_dict
    return db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)


def test_database_url(host=None, port=None):
    """The URL of the database the test run uses (pytest-django's test_* database), optionally
    reached through another address (a proxy in front of it)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    default_host, default_port = database_address()
    return f"postgres://{db['USER']}{password}@{host or default_host}:{port or default_port}/{db['NAME']}"


class Server(ServerProcess):
    """One ASGI server process (`daphne imserver.asgi:application` unless kind="uvicorn") on a
    free loopback port; `args` are extra command-line options of that server.

    On PostgreSQL it shares the test run's database. On SQLite (whose test database lives in the
    test process's memory) it gets a database file of its own in its var directory, migrated
    first: a test then sets up through the server's API and `manage()`, not the ORM. `preexec_fn`
    runs in the server's process before it starts.
    """

    def __init__(self, tmp_path, args=(), kind="daphne", preexec_fn=None, **env):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ws"
        self.environment = {
            **os.environ,
            "RATE_LIMITS": "off",
            "IMSERVER_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_POOL_MIN": "1",
            "DATABASE_POOL_MAX": "8",
        }
        if connection.vendor == "postgresql":
            self.environment["DATABASE_URL"] = test_database_url()
        else:
            self.environment.pop("DATABASE_URL", None)  # the embedded default: var/db.sqlite3
        self.environment.update(env)  # a test's own settings win (e.g. a DATABASE_URL via a proxy)
        if connection.vendor != "postgresql":
            migrated = self.manage("migrate", "--noinput")
            assert migrated.returncode == 0, migrated.stderr
        super().__init__(
            kind,
            port,
            server_command(kind, port, args),
            self.environment,
            tmp_path / f"{kind}-{port}.log",
            preexec_fn=preexec_fn,
        )

    def manage(self, *args, input=None):
        """Runs `manage.py <args>` against the server's database; returns the CompletedProcess."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.environment,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )


def register(base, username):
    body = {"username": username, "password": "Sup3r-secret!", "email": f"{username}@example.com"}
    response = httpx.post(f"{base}/v1/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()
