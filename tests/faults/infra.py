"""What the fault tests break: a private Redis, a TCP proxy in front of PostgreSQL, a socket that
stops reading. Everything here listens on loopback only and is owned by the test that made it."""

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
import redis

from tests.servers import cluster_marks, free_port


def fault_marks():
    """The marks of every fault test: real processes against PostgreSQL and Redis."""
    return cluster_marks("fault tests run real processes on PostgreSQL and Redis")


def wait_for(predicate, timeout, interval=0.05, message="condition"):
    """Polls predicate() until it is true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


async def async_wait_for(predicate, timeout, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class RedisServer:
    """A private `redis-server` without persistence on a free port: tests may kill and restart it
    (the machine's shared Redis on 6379 is never touched). Also keeps the realtime bus of the test's
    processes apart from everybody else's: Redis pub/sub channels ignore the database number."""

    def __init__(self, tmp_path):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path / f"redis-{self.port}"
        self.dir.mkdir()
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, message=f"redis-server on {self.port}")

    def _answers(self):
        try:
            return self.client().ping()
        except redis.RedisError:
            return False

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def kill(self):
        """SIGKILL: every connection drops at once and all data is gone (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def used_memory(self):
        return int(self.client().info("memory")["used_memory"])

    def stop(self):
        self.kill()


class TcpProxy:
    """A TCP proxy on a loopback port in front of host:port, run by an event loop in a thread of
    its own (so that whatever the test does cannot stall it). cut() closes every connection and
    stops listening (new connections are refused); restore() listens again."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.thread.start()
        self.server = None
        self.transports = set()
        self.connections = 0
        self._call(self._listen())

    def _call(self, coroutine, timeout=10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _listen(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _accept(self, client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.connections += 1
        pair = {client_writer.transport, upstream_writer.transport}
        self.transports |= pair

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                for transport in pair:
                    transport.abort()
                self.transports -= pair

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    async def _cut(self):
        self.server.close()  # the listening socket is closed at once: connecting is refused
        self.server = None
        for transport in list(self.transports):
            _reset(transport)
        self.transports.clear()

    def cut(self):
        """The database disappears: every connection is reset, new ones are refused."""
        self._call(self._cut())

    def restore(self):
        self._call(self._listen())

    async def _shutdown(self):
        if self.server is not None:
            await self._cut()
        for transport in list(self.transports):
            _reset(transport)
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self):
        self._call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def _reset(transport):
    """Aborts a connection with a TCP reset (no FIN, no close handshake of any protocol)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class SlowSocket:
    """A WebSocket client that completes the handshake and then stops reading: it never answers
    a ping, and its tiny receive buffer fills at once, so whatever the server sends it piles up
    on the server's side. drain() reads what eventually arrives (frames, close code, reset)."""

    def __init__(self, url, receive_buffer=4096):
        scheme, _, rest = url.partition("://")
        assert scheme == "ws"
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(1)  # byte by byte: nothing after the headers is read here
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        status = self.buffer.split(b"\r\n", 1)[0]
        assert b" 101 " in status, status
        self.buffer = b""

    def tcp_state(self):
        """The kernel's TCP state of the socket (1 established, 7 closed, 8 close-wait)."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]

    def drain(self, timeout):
        """Reads until the server closes the connection or timeout passes: (text frames, close code
        or None, how it ended: "close-frame", "eof", "reset" or "open")."""
        frames, close_code = 0, None
        deadline = time.monotonic() + timeout
        ended = "open"
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            except ConnectionResetError:
                ended = "reset"
                break
            if not chunk:
                ended = "eof"
                break
            self.buffer += chunk
            while True:
                parsed = _parse_frame(self.buffer)
                if parsed is None:
                    break
                opcode, payload, self.buffer = parsed
                if opcode == 1:
                    frames += 1
                elif opcode == 8:
                    close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return frames, close_code, "close-frame"
        return frames, close_code, ended

    def close(self):
        self.sock.close()


def _parse_frame(buffer):
    """One unmasked server frame off the front of buffer: (opcode, payload, rest) or None."""
    if len(buffer) < 2:
        return None
    opcode = buffer[0] & 0x0F
    length = buffer[1] & 0x7F
    offset = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = struct.unpack(">H", buffer[2:4])[0]
        offset = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = struct.unpack(">Q", buffer[2:10])[0]
        offset = 10
    if len(buffer) < offset + length:
        return None
    return opcode, buffer[offset : offset + length], buffer[offset + length :]


class Sampler:
    """Calls measure() every `interval` seconds in a thread of its own while used as a context
    manager, collecting the results in `samples` (until measure() raises OSError/RuntimeError)."""

    interval = 1.0

    def __init__(self):
        self.samples = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def measure(self):
        raise NotImplementedError

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.measure())
            except (OSError, RuntimeError):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(5)
