"""Shared pieces of the load tools: data seeding, a lean HTTP client, server processes, figures.

The load generator shares the machine's two cores with the server, PostgreSQL and Redis, so it
must be cheap: httpx costs about as much CPU per request as the server does, which would halve
every figure. `Http` below is a minimal HTTP/1.1 keep-alive client (tens of microseconds per
request); WebSockets use the `websockets` library.
"""

import asyncio
import collections
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
                          "realtime_eventstream", "realtime_eventpayload", "realtime_userevent"):  # fmt: skip
                cursor.execute(f"VACUUM ANALYZE {table}")


# --- A lean HTTP/1.1 client ----------------------------------------------------------------------


class Http:
    """One keep-alive connection; `await request(...)` -> (status, body bytes)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method, path, body=None, token=None):
        if self.reader is not None and self.reader.at_eof():
            self.close()  # the server closed it while idle (gunicorn's keep-alive timeout is 2 s)
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
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
    # `make run`: one daphne process for HTTP and WebSocket, as the Makefile starts it.
    "daphne": lambda port: [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
        "--ping-interval", "15", "--ping-timeout", "15", "imserver.asgi:application",
    ],
    # The sockets of the production deployment (README, "Deployment"): uvicorn (uvloop,
    # httptools, websockets) without per-message compression (it doubled memory per socket).
    "uvicorn": lambda port: [
        sys.executable, "-m", "uvicorn", "imserver.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--ws-max-size", "65600", "--ws-per-message-deflate", "false", "--lifespan", "off",
        "--workers", os.environ.get("BENCH_WS_WORKERS", "1"),
    ],
    # The REST API of the production deployment: gunicorn (WSGI) with threads.
    "gunicorn": lambda port: [
        sys.executable, "-m", "gunicorn", "imserver.wsgi:application", "-b", f"127.0.0.1:{port}",
        "-k", "gthread", "--threads", os.environ.get("BENCH_THREADS", "4"), "-w", os.environ.get("BENCH_WORKERS", "3"),
        "--keep-alive", "75",
    ],
}  # fmt: skip


class Server:
    """A server process of one of SERVER_COMMANDS on a free port, with its CPU and memory."""

    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = open(RESULTS / f"server-{kind}-{self.port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            SERVER_COMMANDS[kind](self.port),
            cwd=ROOT,
            env=environment(),
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

    def pids(self):
        """The process and its children (gunicorn's workers)."""
        return [self.process.pid, *_children(self.process.pid)]

    def cpu_seconds(self):
        """User+system CPU of the process and its children so far."""
        return sum(process_cpu(pid) for pid in self.pids())

    def rss_bytes(self):
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except FileNotFoundError:
                pass
        return total

    def open_fds(self):
        total = 0
        for pid in self.pids():
            with contextlib.suppress(FileNotFoundError):  # a child that exited meanwhile
                total += len(os.listdir(f"/proc/{pid}/fd"))
        return total

    def fd_kinds(self):
        return fd_kinds(self.pids(), self.port)

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


def process_cpu(pid):
    """User+system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_kinds(pids, server_port):
    """Open file descriptors of processes by kind: client sockets (on `server_port`), PostgreSQL and
    Redis connections, other sockets, and files/pipes."""
    peers = {}  # socket inode -> (local port, remote port, listening)
    for pid in pids:
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            except FileNotFoundError:
                continue
            for line in lines:
                fields = line.split()
                local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                peers[fields[9]] = (local, remote, fields[3] == "0A")
    kinds = collections.Counter()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if not target.startswith("socket:["):
                kinds["files/pipes"] += 1
                continue
            local, remote, listening = peers.get(target[8:-1], (None, None, False))
            if listening:
                kinds["listening"] += 1
            elif remote == 5432:
                kinds["PostgreSQL"] += 1
            elif remote == 6379:
                kinds["Redis"] += 1
            elif local == server_port:
                kinds["clients"] += 1
            else:
                kinds["other sockets"] += 1
    return kinds


def redis_client():
    import redis

    return redis.Redis.from_url(environment()["REDIS_URL"], socket_timeout=5)


def redis_server_pid():
    """The redis-server process (its CPU is the whole server's: other users of it count too)."""
    return int(redis_client().info("server")["process_id"])


# --- Deployments -----------------------------------------------------------------------------------

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
    if plus and rest in SERVER_COMMANDS and ws in WEBSOCKET_SERVERS:
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
        return sum(server.rss_bytes() for server in self.servers)

    def open_fds(self):
        return sum(server.open_fds() for server in self.servers)

    def gap_fills(self):
        """Events the servers had to read back from the log (the bus lost or reordered them)."""
        total = 0
        for server in self.servers:
            server.log.flush()
            total += Path(server.log.name).read_text(errors="replace").count("from the log (not delivered by the bus)")
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


# --- Delivery: receivers on sockets, senders over REST ---------------------------------------------


class Receiver:
    """One member's socket: the arrival time of every new_message and their order; duplicates
    counted, and the close code if the server closed it."""

    def __init__(self):
        self.arrivals = {}  # message id -> arrival time
        self.order = []
        self.duplicates = 0
        self.closed = None

    async def listen(self, url, ready, stop):
        import orjson
        import websockets

        async with websockets.connect(url, max_size=2**20, max_queue=None, ping_interval=None) as socket:
            ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), 0.5)
                except TimeoutError:
                    continue
                except websockets.ConnectionClosed as closed:
                    self.closed = closed.rcvd.code if closed.rcvd else 1006
                    return
                now = time.time()
                frame = orjson.loads(raw)
                if frame["type"] != "new_message":
                    continue
                message_id = int(frame["data"]["message_id"][1:])
                if message_id in self.arrivals:
                    self.duplicates += 1
                    continue
                self.arrivals[message_id] = now
                self.order.append(message_id)


async def connect_receivers(ws_port, tokens, stop, batch=100, timeout=60):
    """A Receiver per token, connected in batches (as clients would trickle in); -> (receivers, tasks)."""
    receivers = [Receiver() for _ in tokens]
    tasks = []
    for start in range(0, len(tokens), batch):
        ready = []
        for i in range(start, min(start + batch, len(tokens))):
            ready.append(asyncio.Event())
            url = f"ws://127.0.0.1:{ws_port}/ws?token={tokens[i]}"
            tasks.append(asyncio.ensure_future(receivers[i].listen(url, ready[-1], stop)))
        deadline = time.monotonic() + timeout
        while not all(event.is_set() for event in ready):
            for task in tasks[start:]:
                if task.done():  # ended before it was ready: it failed
                    raise task.exception() or ConnectionError("socket closed before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError(f"receivers did not connect within {timeout} s")
            await asyncio.sleep(0.05)
    return receivers, tasks


async def post_open_loop(rest_port, path, token, message_rate, seconds, connections=8):
    """Open loop: a message every 1/message_rate seconds whatever the answers, over enough
    connections that a slow answer never holds the next send back.

    -> (sent {message id: send time}, errors [status], messages attempted, ack latencies)."""
    import orjson

    sent, errors, acks = {}, [], []
    pool = [Http("127.0.0.1", rest_port) for _ in range(connections)]
    free = asyncio.Queue()
    for http in pool:
        free.put_nowait(http)
    inflight = set()

    async def post(n):
        http = await free.get()
        try:
            started = time.time()
            status, body = await asyncio.wait_for(
                http.request("POST", path, {"content": f"m{n}", "temp_id": f"d{started}-{n}"}, token), 30
            )
            if status == 201:
                sent[int(orjson.loads(body)["message_id"][1:])] = started
                acks.append(time.time() - started)
            else:
                errors.append(status)
        except (OSError, TimeoutError, ConnectionError) as exc:
            errors.append(repr(exc))
            http.close()
        finally:
            free.put_nowait(http)

    n, start = 0, time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        task = asyncio.ensure_future(post(n))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        n += 1
        await asyncio.sleep(max(0, start + n / message_rate - time.monotonic()))
    await asyncio.gather(*inflight)
    for http in pool:
        http.close()
    return sent, errors, n, sorted(acks)


async def post_closed_loop(targets, seconds):
    """Closed loop: one client per (REST port, token, conversation id), each posting its next
    message as soon as the last is acknowledged, for `seconds`.

    -> (ack latencies, errors, elapsed, sent: per target {message id: send time})."""
    import orjson

    latencies, errors, sent = [], [], [{} for _ in targets]
    run_id = f"{time.time():.6f}"
    deadline = time.monotonic() + seconds

    async def sender(index, port, token, conversation_id):
        http = Http("127.0.0.1", port)
        path = f"/v1/conversations/c{conversation_id}/messages"
        n = 0
        while time.monotonic() < deadline:
            started = time.time()
            try:
                status, body = await asyncio.wait_for(
                    http.request("POST", path, {"content": "hello", "temp_id": f"{run_id}-{index}-{n}"}, token), 30
                )
            except (OSError, TimeoutError, ConnectionError) as exc:
                errors.append((0, repr(exc)))
                http.close()
                await asyncio.sleep(0.1)
                continue
            if status == 201:
                latencies.append(time.time() - started)
                sent[index][int(orjson.loads(body)["message_id"][1:])] = started
            else:
                errors.append((status, body[:200]))
            n += 1
        http.close()

    started = time.monotonic()
    await asyncio.gather(*[sender(i, *target) for i, target in enumerate(targets)])
    return latencies, errors, time.monotonic() - started, sent


async def wait_delivered(groups, timeout=5):
    """Until every receiver has every message of its group, or `timeout` seconds; `groups` is
    [(sent {message id: send time}, receivers of those messages)]."""
    until = time.monotonic() + timeout
    while time.monotonic() < until and any(
        not sent.keys() <= r.arrivals.keys() for sent, receivers in groups for r in receivers
    ):
        await asyncio.sleep(0.1)


async def deliver_to_group(rest_port, ws_port, conversation_id, members, rate, seconds, meter=None):
    """The first of `members` ((user, token) pairs) posts to the group conversation at `rate`
    deliveries/s for `seconds` through rest_port while the others listen on ws_port, after a
    second of warm-up sends (new pooled connections, first requests of each server thread) that
    the figures leave out. `meter` (a CpuMeter) counts the sends and their delivery, not the
    connects. Returns (sent, receivers, errors, attempted, acks)."""
    stop = asyncio.Event()
    receivers, tasks = await connect_receivers(ws_port, [token for _, token in members[1:]], stop)
    path = f"/v1/conversations/c{conversation_id}/messages"
    message_rate = rate / len(receivers)
    warmup, _, _, _ = await post_open_loop(rest_port, path, members[0][1], message_rate, 1)
    await wait_delivered([(warmup, receivers)])
    if meter is not None:
        meter.start()
    sent, errors, attempted, acks = await post_open_loop(rest_port, path, members[0][1], message_rate, seconds)
    await wait_delivered([(sent, receivers)])
    if meter is not None:
        meter.stop()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sent, receivers, errors, attempted, acks


def delivery_figures(groups, seconds):
    """Send-to-receive latency per delivery and to each message's last recipient; loss,
    duplicates and reordering counted exactly against the acknowledged messages. `groups` is
    [(sent {message id: send time}, the receivers that must each get all of them)]."""
    latencies, last_recipient = [], []
    lost = reordered = 0
    for sent, receivers in groups:
        for receiver in receivers:
            got = [m for m in receiver.order if m in sent]
            lost += len(sent) - len(got)
            reordered += sum(1 for a, b in zip(got, got[1:], strict=False) if b < a)
        for message_id, sent_at in sent.items():
            arrivals = [r.arrivals[message_id] - sent_at for r in receivers if message_id in r.arrivals]
            latencies.extend(arrivals)
            if len(arrivals) == len(receivers):
                last_recipient.append(max(arrivals))
    latencies.sort()
    last_recipient.sort()
    return {
        "deliveries/s": len(latencies) / seconds,
        "delivery p50 ms": percentile(latencies, 0.5) * 1000,
        "delivery p99 ms": percentile(latencies, 0.99) * 1000,
        "delivery max ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "last recipient p99 ms": percentile(last_recipient, 0.99) * 1000,
        "lost": lost,
        "duplicates": sum(r.duplicates for _, receivers in groups for r in receivers),
        "reordered": reordered,
        "sockets closed by the server": sum(r.closed is not None for _, receivers in groups for r in receivers),
    }


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
