"""Real imserver server processes on loopback: the one harness of the load tools (bench/harness.py)
and of the tests that cross process boundaries (tests/servers.py).

A `ServerProcess` starts one server (daphne, uvicorn or gunicorn, as `server_command` spells it),
waits until `GET /healthz` answers 200, and reads its CPU, memory and file descriptors from /proc.
"""

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(kind, port, args=()):
    """The command line of one server process serving imserver on a loopback port; `args` are
    extra options of that server."""
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args, "imserver.asgi:application"]
    if kind == "uvicorn":
        # --lifespan off: the application is HTTP and WebSocket only.
        return [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--no-access-log", *args, "imserver.asgi:application",
        ]  # fmt: skip
    if kind == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *args, "imserver.wsgi:application"]
    raise ValueError(f"unknown server kind {kind!r}")


def process_cpu(pid):
    """User+system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _sockets(pids):
    """[(local port, remote port, listening)] of every socket the processes hold open, one entry
    per file descriptor ((None, None, False) for a socket that is not TCP)."""
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
    held = []
    for target in _fd_targets(pids):
        if target.startswith("socket:["):
            held.append(peers.get(target[8:-1], (None, None, False)))
    return held


def _fd_targets(pids):
    targets = []
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for name in names:
            with contextlib.suppress(OSError):  # closed meanwhile
                targets.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return targets


class ServerProcess:
    """One server process started with `command` in `environment`, its output in the file `log`.

    The constructor returns once the server answers `/healthz` with 200 (or raises with the log);
    `preexec_fn` runs in the child before the server starts (e.g. to lower its `ulimit -n`)."""

    def __init__(self, kind, port, command, environment, log, preexec_fn=None):
        self.kind = kind
        self.port = port
        self.environment = environment
        self.log = Path(log)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
            )
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if b" 200 " in conn.recv(100):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not become healthy:\n{self.log.read_text(errors='replace')}")

    @property
    def pid(self):
        return self.process.pid

    def pids(self):
        """The process and its children (gunicorn's workers)."""
        return [self.pid, *children(self.pid)]

    def alive(self):
        return self.process.poll() is None

    def cpu_seconds(self):
        """User+system CPU of the process and its children so far."""
        return sum(process_cpu(pid) for pid in self.pids())

    def rss(self):
        """Resident memory of the process and its children in bytes (VmRSS)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(FileNotFoundError):  # a child that exited meanwhile
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def open_fds(self):
        """How many file descriptors the process and its children hold open."""
        return len(_fd_targets(self.pids()))

    def tcp_fds(self):
        """{remote port: how many of the process's fds are TCP connections to it} (0: listening)."""
        return dict(collections.Counter(remote for _, remote, _ in _sockets(self.pids()) if remote is not None))

    def fd_kinds(self):
        """Open file descriptors by kind: client sockets (on the server's port), PostgreSQL and
        Redis connections, other sockets, and files/pipes."""
        pids = self.pids()
        kinds = collections.Counter("files/pipes" for target in _fd_targets(pids) if not target.startswith("socket:["))
        for local, remote, listening in _sockets(pids):
            if listening:
                kinds["listening"] += 1
            elif remote == 5432:
                kinds["PostgreSQL"] += 1
            elif remote == 6379:
                kinds["Redis"] += 1
            elif local == self.port:
                kinds["clients"] += 1
            else:
                kinds["other sockets"] += 1
        return kinds

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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
