"""Shared pieces of the load tools: data seeding, a lean HTTP client, server processes, figures.

The load generator shares the machine's two cores with the server, PostgreSQL and Redis, so it
must be cheap: httpx costs about as much CPU per request as the server does, which would halve
every figure. `Http` below is a minimal HTTP/1.1 keep-alive client (tens of microseconds per
request); WebSockets use the `websockets` library.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/imserver_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"


def environment():
    """The environment the servers and the seeding share (PostgreSQL and Redis by default)."""
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env["RATE_LIMITS"] = "off"  # the load is the point; limits are tested elsewhere
    env.setdefault("LOG_LEVEL", "WARNING")
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.setdefault("DATABASE_POOL_MAX", "40")
    env.setdefault("GROUP_MAX_MEMBERS", "5000")  # the delivery bench goes up to 1000
    return env


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
    """Fresh planner statistics after bulk seeding (autovacuum would get there, later)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


# --- A lean HTTP/1.1 client ----------------------------------------------------------------------


class Http:
    """One keep-alive connection; `await request(...)` -> (status, body bytes)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method, path, body=None, token=None):
        if self.writer is None:
            await self._connect()
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\n\r\n"
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding" and "chunked" in value:
                raise RuntimeError("chunked responses are not supported by the bench client")
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


# --- Server processes ----------------------------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SERVER_COMMANDS = {
    # `make run`: one daphne process for HTTP and WebSocket.
    "daphne": lambda port: [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "imserver.asgi:application",
    ],
    # One uvicorn process (uvloop, httptools, websockets).
    "uvicorn": lambda port: [
        sys.executable, "-m", "uvicorn", "imserver.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--ws-max-size", "65600", "--lifespan", "off",
    ],
    # The REST API under a WSGI server: gunicorn with threads.
    "gunicorn": lambda port: [
        sys.executable, "-m", "gunicorn", "imserver.wsgi:application", "-b", f"127.0.0.1:{port}",
        "-k", "gthread", "--threads", "8", "-w", os.environ.get("BENCH_WORKERS", "2"),
    ],
}  # fmt: skip


class Server:
    """A server process of one of SERVER_COMMANDS on a free port, with its CPU and memory."""

    def __init__(self, kind, env=None, log_dir=RESULTS):
        self.kind = kind
        self.port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / f"server-{kind}-{self.port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            SERVER_COMMANDS[kind](self.port),
            cwd=ROOT,
            env={**environment(), **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if b" 200 " in conn.recv(100):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not become healthy; see {self.log.name}")

    def cpu_seconds(self):
        """User+system CPU of the process and its children so far."""
        total = 0.0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (FileNotFoundError, IndexError):
                pass
        return total

    def rss_bytes(self):
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except FileNotFoundError:
                pass
        return total

    def open_fds(self):
        return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in [self.process.pid, *_children(self.process.pid)])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _children(pid):
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def postgres_cpu():
    """{pid: CPU seconds} of every PostgreSQL process on the machine (the bench is alone on it)."""
    usage = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry, "comm").read_text().strip() in ("postgres", "postmaster"):
                fields = Path(entry, "stat").read_text().rsplit(")", 1)[1].split()
                usage[entry.name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return usage


class CpuMeter:
    """CPU seconds used by the servers, PostgreSQL and this process between start() and stop().

    PostgreSQL is counted per backend process alive at the end (one that exits in between takes
    its share with it, so keep connections pooled while measuring)."""

    def __init__(self, servers):
        self.servers = servers
        self.used = (0.0, 0.0, 0.0)

    def _now(self):
        return sum(s.cpu_seconds() for s in self.servers), postgres_cpu(), time.process_time()

    def start(self):
        self._started = self._now()

    def stop(self):
        servers, postgres, own = self._now()
        servers_before, postgres_before, own_before = self._started
        postgres_used = sum(cpu - postgres_before.get(pid, 0.0) for pid, cpu in postgres.items())
        self.used = (servers - servers_before, postgres_used, own - own_before)


# --- Figures -------------------------------------------------------------------------------------


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def report(name, figures, command):
    """Prints the figures and the command that reproduces them; appends them to results.jsonl."""
    print(f"\n== {name}")
    for key, value in figures.items():
        print(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
    print(f"  reproduce: {command}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "results.jsonl", "a") as out:
        out.write(json.dumps({"name": name, "figures": figures, "command": command, "at": time.time()}) + "\n")
