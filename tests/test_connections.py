"""Contract 23 under a real daphne started as `make run` starts it: connections that never send a
request cannot take the process's descriptors (issue 19: 1,100 half-open connections exhausted a
daphne limited to 1,024 descriptors, after which Twisted accepted and dropped every new client)."""

import contextlib
import re
import resource
import socket
import time

import pytest
from websockets.sync.client import connect as ws_connect

from tests.servers import ROOT, Server, register

pytestmark = pytest.mark.django_db(transaction=True)  # on PostgreSQL, the server writes the test database

DESCRIPTORS = 256  # the server's `ulimit -n`
HALF_OPEN = 400  # more connections than that, each sending nothing


def make_run_flags():
    """The daphne options of the Makefile's `run` target (between the port and the application)."""
    line = re.search(
        r"daphne -b \$\(HOST\) -p \$\(PORT\) (.*) imserver\.asgi:application", (ROOT / "Makefile").read_text()
    )
    return line.group(1).split()


def limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


@pytest.fixture
def server(tmp_path):
    # One per test, stopped before the test database is flushed: a server still querying it
    # deadlocks the flush's TRUNCATE.
    started = Server(tmp_path, args=make_run_flags(), preexec_fn=limit_descriptors)
    yield started
    started.stop()


@pytest.fixture
def client_descriptors():
    """This test process needs more descriptors than the server has."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * HALF_OPEN)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def half_open(server, count):
    """`count` connections to the server that send nothing, opened one after another so that the
    server accepts each (a burst would wait in the kernel's accept queue instead)."""
    held = []
    for _ in range(count):
        held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.002)
    return held


def healthz(server, timeout=2):
    """The status line of GET /healthz, b"" when the server drops the connection unanswered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return conn.recv(100).split(b"\r\n", 1)[0]


def close_all(sockets):
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def test_more_half_open_connections_than_descriptors_leave_the_server_serving(server, client_descriptors):
    token = register(server.base, "survivor")["token"]
    with ws_connect(f"{server.ws}?token={token}", subprotocols=["imserver"], open_timeout=5) as websocket:
        held = half_open(server, HALF_OPEN)
        try:
            assert server.open_fds() < DESCRIPTORS  # not one taken from what the process needs itself
            started = time.monotonic()
            assert healthz(server) == b"HTTP/1.1 200 OK"
            assert time.monotonic() - started < 2
            # A WebSocket is a connection in use: never the one closed to make room.
            websocket.send('{"type": "ping", "data": {"timestamp": 1}}')
            assert '"pong"' in websocket.recv(timeout=5)
        finally:
            close_all(held)


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(tmp_path):
    quick = Server(tmp_path, args=make_run_flags(), HTTP_IDLE_SECONDS="1")
    try:
        with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as conn:
            started = time.monotonic()
            assert conn.recv(100) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - started < 5
    finally:
        quick.stop()
