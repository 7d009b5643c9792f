"""The load clients. The load generator shares the machine's two cores with the server, PostgreSQL
and Redis, so it must be cheap: httpx costs about as much CPU per request as the server does, which
would halve every figure. `Http` below is a minimal HTTP/1.1 keep-alive client (tens of
microseconds per request); WebSockets use the `websockets` library.
"""

import asyncio
import json
import time


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
