"""The load tools' servers: the environment they share with the seeding, the server processes of
each deployment (make run's daphne, the production-style gunicorn + uvicorn), CPU metering, Redis.

PostgreSQL and Redis on 127.0.0.1 by default (DATABASE_URL and REDIS_URL override them).
"""

import gc
import os
import time
from pathlib import Path

from bench.processes import ROOT, ServerProcess, free_port, process_cpu, server_command

# The load generator holds up to thousands of sockets too: its own collector pauses would count
# as server latency (see imserver/gc_tuning.py).
gc.set_threshold(7_000, 20, 100)
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


SERVER_OPTIONS = {
    # `make run`: one daphne process for HTTP and WebSocket, as the Makefile starts it.
    "daphne": lambda: ["--ping-interval", "15", "--ping-timeout", "15"],
    # The sockets of the production deployment (docs/deployment.md): uvicorn (uvloop, httptools,
    # websockets) without per-message compression (it doubled memory per socket).
    "uvicorn": lambda: [
        "--ws-max-size", "65600", "--ws-per-message-deflate", "false",
        "--workers", os.environ.get("BENCH_WS_WORKERS", "1"),
    ],
    # The REST API of the production deployment: gunicorn (WSGI) with threads.
    "gunicorn": lambda: [
        "-k", "gthread", "--threads", os.environ.get("BENCH_THREADS", "4"), "-w", os.environ.get("BENCH_WORKERS", "3"),
        "--keep-alive", "75",
    ],
}  # fmt: skip


class Server(ServerProcess):
    """A server process of one of SERVER_OPTIONS' kinds on a free port, its output in bench/results/."""

    def __init__(self, kind):
        port = free_port()
        command = server_command(kind, port, SERVER_OPTIONS[kind]())
        super().__init__(kind, port, command, environment(), RESULTS / f"server-{kind}-{port}.log")


def redis_client():
    import redis

    return redis.Redis.from_url(environment()["REDIS_URL"], socket_timeout=5)


def redis_server_pid():
    """The redis-server process (its CPU is the whole server's: other users of it count too)."""
    return int(redis_client().info("server")["process_id"])


DEPLOYMENTS = {
    # `make run`: one daphne process serves REST and WebSocket.
    "daphne": ("daphne", "daphne"),
    # One uvicorn process for both.
    "uvicorn": ("uvicorn", "uvicorn"),
    # Production-style: REST under gunicorn (WSGI, gthread, 3 workers of 4 threads), WebSockets under uvicorn
    # on another port; clients send REST to one port and open sockets on the other, as a load
    # balancer routing /ws by path would.
    "production": ("gunicorn", "uvicorn"),
}
WEBSOCKET_SERVERS = ("daphne", "uvicorn")


def parse_deployment(name):
    """(REST server kind, WebSocket server kind) of a deployment name, or of "REST+WS" such as
    "gunicorn+daphne"."""
    if name in DEPLOYMENTS:
        return DEPLOYMENTS[name]
    rest, plus, ws = name.partition("+")
    if plus and rest in SERVER_OPTIONS and ws in WEBSOCKET_SERVERS:
        return rest, ws
    if name == "gunicorn":  # REST only
        return "gunicorn", None
    raise ValueError(f"unknown deployment {name!r}: one of {', '.join(DEPLOYMENTS)}, gunicorn, or REST+WS")


def add_deployment_argument(parser, default="daphne"):
    parser.add_argument(
        "--deployment",
        "--server",
        dest="deployment",
        default=default,
        help="daphne (make run, the default), production (REST by gunicorn, sockets by uvicorn), uvicorn, "
        "gunicorn (REST only) or REST+WS such as gunicorn+daphne",
    )


class Deployment:
    """The server processes of a deployment on loopback, started here: `rest_port` takes the
    REST requests and `ws_port` the sockets (the same port when one process serves both).

    rest=False or ws=False leaves out a process only that side needs (sockets.py needs no
    gunicorn). Two Deployments of the same name are two nodes behind the same PostgreSQL and
    Redis, as a load balancer would see them."""

    def __init__(self, name, rest=True, ws=True):
        self.name = name
        rest_kind, ws_kind = parse_deployment(name)
        if ws and ws_kind is None:
            raise ValueError(f"{name} serves no WebSocket")
        self.servers = []
        try:
            if rest_kind == ws_kind:
                self.servers.append(Server(rest_kind))
                self.rest_port = self.ws_port = self.servers[0].port
            else:
                self.rest_port = self.ws_port = None
                if rest:
                    self.servers.append(Server(rest_kind))
                    self.rest_port = self.servers[-1].port
                if ws:
                    self.servers.append(Server(ws_kind))
                    self.ws_port = self.servers[-1].port
        except BaseException:
            self.stop()
            raise

    def rss_bytes(self):
        return sum(server.rss() for server in self.servers)

    def open_fds(self):
        return sum(server.open_fds() for server in self.servers)

    def gap_fills(self):
        """Events the servers had to read back from the log (the bus lost or reordered them)."""
        total = 0
        for server in self.servers:
            total += server.log.read_text(errors="replace").count("from the log (not delivered by the bus)")
        return total

    def stop(self):
        for server in self.servers:
            server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def postgres_cpu():
    """{pid: CPU seconds} of every PostgreSQL process on the machine (the bench is alone on it)."""
    usage = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry, "comm").read_text().strip() in ("postgres", "postmaster"):
                usage[entry.name] = process_cpu(entry.name)
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
