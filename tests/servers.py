"""Real daphne processes for tests that cross process boundaries (cluster, faults)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url():
    """The URL of the database the test run uses (pytest-django's test_* database)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Server:
    """One `daphne imserver.asgi:application` on a free loopback port.

    On PostgreSQL it shares the test run's database. On SQLite (whose test database lives in the
    test process's memory) it gets a database file of its own in its var directory, migrated
    first: a test then sets up through the server's API and `manage()`, not the ORM.
    """

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"
        self.log = tmp_path / f"daphne-{self.port}.log"
        self.environment = {
            **os.environ,
            "RATE_LIMITS": "off",
            "IMSERVER_VAR_DIR": str(tmp_path / "var"),
            "DATABASE_POOL_MIN": "1",
            "DATABASE_POOL_MAX": "8",
            **env,
        }
        if connection.vendor == "postgresql":
            self.environment["DATABASE_URL"] = test_database_url()
        else:
            self.environment.pop("DATABASE_URL", None)  # the embedded default: var/db.sqlite3
            migrated = self.manage("migrate", "--noinput")
            assert migrated.returncode == 0, migrated.stderr
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "imserver.asgi:application"],
                cwd=ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_healthy()

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

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daphne did not become healthy:\n{self.log.read_text()}")

    def kill(self):
        """kill -9: no cleanup of any kind, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def register(base, username):
    body = {"username": username, "password": "Sup3r-secret!", "email": f"{username}@example.com"}
    response = httpx.post(f"{base}/v1/auth/register", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()
