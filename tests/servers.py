"""Real daphne processes for tests that cross process boundaries (cluster, faults)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def server_command(kind, port, args=()):
    """The command line of one ASGI server process serving imserver on a loopback port."""
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args, "imserver.asgi:application"]
    if kind == "uvicorn":
        # --lifespan off: the application is HTTP and WebSocket only.
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
            *args,
            "imserver.asgi:application",
        ]
    raise ValueError(f"unknown server kind {kind!r}")


class Server:
    """One ASGI server process (`daphne imserver.asgi:application` unless kind="uvicorn") on a
    free loopback port; `args` are extra command-line options of that server.

    On PostgreSQL it shares the test run's database. On SQLite (whose test database lives in the
    test process's memory) it gets a database file of its own in its var directory, migrated
    first: a test then sets up through the server's API and `manage()`, not the ORM.
    """

    def __init__(self, tmp_path, args=(), kind="daphne", **env):
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"
        self.log = tmp_path / f"{kind}-{self.port}.log"
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
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                server_command(kind, self.port, args),
                cwd=ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

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
                raise RuntimeError(f"{self.kind} exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not become healthy:\n{self.log.read_text()}")

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def rss(self):
        """Resident memory of the process in bytes (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.pid}")

    def open_fds(self):
        """How many file descriptors the process holds open."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def tcp_fds(self):
        """{remote port: how many of the process's fds are TCP connections to it} (0: listening)."""
        remote_port = {}
        for table in ("tcp", "tcp6"):
            path = Path(f"/proc/{self.pid}/net/{table}")
            if not path.exists():
                continue
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                remote_port[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
        counts = {}
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                port = remote_port.get(target[8:-1])
                if port is not None:
                    counts[port] = counts.get(port, 0) + 1
        return counts

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
