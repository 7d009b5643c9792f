"""A receiver that stops reading while thousands of events are sent to it: the server's memory
stays bounded, the slow socket is closed, and the client catches up after resuming with since=.

What bounds it depends on the server:
- daphne (Twisted/autobahn) writes frames without backpressure: the consumer's send() never
  waits, so everything queues in Twisted's buffer of the socket. The bound is daphne's
  websocket keepalive: a client that does not read does not answer pings, and after
  --ping-interval (checked every 2 s) plus --ping-timeout the connection is dropped (TCP abort).
- uvicorn (websockets) applies backpressure: send() waits while the socket's buffer is full,
  frames pile up in the consumer (realtime.delivery.MAX_PENDING_FRAMES), and past that the
  consumer drops them and closes with 4408; the client sees the close frame when it reads again.
  (uvicorn's close waits for the buffer to drain too, so the connection itself ends only when
  the client reads again or goes away; what it holds meanwhile is bounded.)
"""

import asyncio
import time

import httpx

from realtime.delivery import MAX_PENDING_FRAMES
from tests.faults.clients import Receiver, Sender, assert_delivery_invariant, auth, open_group
from tests.faults.infra import Sampler, SlowSocket, async_wait_for, fault_marks
from tests.servers import register

pytestmark = fault_marks()

MB = 1024 * 1024


class RssSampler(Sampler):
    """Samples a process's RSS every 50 ms."""

    interval = 0.05

    def __init__(self, server):
        super().__init__()
        self.server = server

    def measure(self):
        return time.monotonic(), self.server.rss()

    @property
    def peak(self):
        return max(rss for _, rss in self.samples)


def last_status(watcher, user):
    statuses = [data["status"] for type, data in watcher.others if type == "contact_status" and data["user_id"] == user]
    return statuses[-1] if statuses else None


async def flood(sender, conversation, count, size, rate=None, concurrency=12):
    """Sends count messages, at most `rate` a second when given (so that the flood lasts as long
    on a fast machine as on a slow one)."""
    queue = list(range(count))
    body = "x" * size
    started = time.monotonic()

    async def worker():
        while queue:
            n = queue.pop(0)
            if rate:
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            await sender.send(conversation, f"{n:06d}{body}", f"flood-{n}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def slow_receiver_scenario(start_servers, seed, *, kind, args, messages, size, rate=None, slow_sockets=3, **env):
    (holder,) = start_servers(1, kind=kind, args=args, **env)
    # Two more processes take the sends, so that the holder's memory is the sockets'.
    entry, entry2 = start_servers(2)
    alice, bob, carol, dave = (register(entry.base, name) for name in ("alice", "bob", "carol", "dave"))
    conversation = await open_group(entry.base, alice, [bob, carol])
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        response = await client.post(
            f"{entry.base}/v1/contacts", json={"user_id": bob["user_id"]}, headers=auth(dave["token"])
        )
        assert response.status_code == 201
    watcher = Receiver("dave", dave["token"], [entry.ws], seed=seed).start()
    fast = Receiver("carol", carol["token"], [holder.ws], seed=seed).start()
    sender = Sender("alice", alice["token"], [entry.base, entry2.base], seed=seed, attempt_timeout=30)
    await async_wait_for(lambda: watcher.connected and fast.connected, 20)
    slow = [
        await asyncio.to_thread(SlowSocket, f"{holder.ws}?token={bob['token']}&since=0") for _ in range(slow_sockets)
    ]
    slow_since = time.monotonic()
    await async_wait_for(lambda: last_status(watcher, bob["user_id"]) == "online", 10, message="bob online")
    baseline = holder.rss()
    closed_at = sent_at_close = None

    async def watch_close():
        nonlocal closed_at, sent_at_close
        await async_wait_for(lambda: last_status(watcher, bob["user_id"]) == "offline", 600)
        closed_at = time.monotonic()
        sent_at_close = len(sender.stored)

    closing = asyncio.create_task(watch_close())
    resumed = None
    try:
        with RssSampler(holder) as rss:
            started = time.monotonic()
            await asyncio.wait_for(flood(sender, conversation, messages, size, rate), 300)
            flood_seconds = time.monotonic() - started
            await asyncio.sleep(1)
        peak = rss.peak
        after_flood = holder.rss()
        # What the slow sockets get when they finally read.
        drained = [await asyncio.to_thread(s.drain, 20) for s in slow]
        for socket in slow:
            socket.close()  # as a client does once it has read the close frame
        await asyncio.wait_for(closing, 20)
        # Resume with since= (bob had processed nothing) and catch up.
        resumed = Receiver("bob", bob["token"], [holder.ws], seed=seed).start()
        await assert_delivery_invariant({resumed: [conversation], fast: [conversation]}, [conversation], timeout=120)
    finally:
        closing.cancel()
        for socket in slow:
            socket.close()
        for receiver in (watcher, fast, resumed):
            if receiver is not None:
                await receiver.stop()
        await sender.aclose()

    frame_bytes = size + 400
    addressed = messages * frame_bytes * slow_sockets
    print(
        f"{kind}: {messages} messages of {size} chars in {flood_seconds:.1f}s ({messages / flood_seconds:.0f}/s); "
        f"{addressed / MB:.0f} MB addressed to {slow_sockets} sockets that do not read; RSS baseline "
        f"{baseline / MB:.1f} MB, peak {peak / MB:.1f} MB (+{(peak - baseline) / MB:.1f}), "
        f"after {after_flood / MB:.1f} MB"
    )
    print(
        f"{kind}: slow sockets closed (watcher saw bob offline) {closed_at - slow_since:.1f}s after they connected, "
        f"{sent_at_close} messages into the flood; "
        f"what they read afterwards (frames, close code, end): {drained}; fast reader: {fast.summary()}"
    )
    assert not sender.problems and not sender.failures
    assert fast.connections == 1, "the reading socket on the same process was closed"
    return {
        "baseline": baseline,
        "peak": peak,
        "addressed": addressed,
        "closed_after": closed_at - slow_since,
        "sent_at_close": sent_at_close,
        "frame_bytes": frame_bytes,
        "flood_seconds": flood_seconds,
        "drained": drained,
    }


async def test_daphne_drops_a_socket_that_stops_reading(start_servers, seed):
    interval, timeout = 1, 3
    figures = await slow_receiver_scenario(
        start_servers,
        seed,
        kind="daphne",
        args=["--ping-interval", str(interval), "--ping-timeout", str(timeout)],
        messages=2000,
        size=8000,
        rate=80,
    )
    # Pings go out once the client has been silent for --ping-interval, checked every 2 s.
    assert figures["closed_after"] < interval + 2 + timeout + 5
    # Closed early in the flood, and the memory it took is bounded by what was sent to it until
    # then (most of which sat in the kernel's socket buffers, not in the process).
    assert figures["sent_at_close"] < 2000 / 2
    growth = figures["peak"] - figures["baseline"]
    assert growth < figures["sent_at_close"] * figures["frame_bytes"] * 3 + 8 * MB
    assert growth < figures["addressed"] / 4
    for frames, _, ended in figures["drained"]:
        assert ended in ("reset", "eof"), ended  # an abort: no close frame
        assert frames < 2000


async def test_daphne_closes_a_socket_past_its_buffer_bound_with_4408(start_servers, seed):
    bound = 1 * MB
    figures = await slow_receiver_scenario(
        start_servers,
        seed,
        kind="daphne",
        # Keepalive pings off: the bound under test is the transport buffer's, not the pings'.
        args=["--ping-interval", "600", "--ping-timeout", "600"],
        messages=1500,
        size=8000,
        rate=100,
        WS_MAX_BUFFERED_BYTES=str(bound),
        WS_SLOW_CLOSE_SECONDS="120",
    )
    for frames, code, ended in figures["drained"]:
        # It read what the buffers held, then the close: the frames past the bound were dropped.
        assert code == 4408 and ended == "close-frame", figures["drained"]
        assert frames < 1500 / 2
    # Each socket holds at most the bound plus one frame in the process.
    assert figures["peak"] - figures["baseline"] < 3 * (bound + figures["frame_bytes"]) + 24 * MB


async def test_uvicorn_closes_a_socket_that_stops_reading_with_4408(start_servers, seed):
    figures = await slow_receiver_scenario(
        start_servers,
        seed,
        kind="uvicorn",
        # Keepalive pings off: the bound under test is the consumer's, not the server's pings.
        args=["--ws", "websockets-sansio", "--ws-ping-interval", "0"],
        messages=MAX_PENDING_FRAMES + 1500,
        size=2000,
        slow_sockets=1,
    )
    ((frames, code, ended),) = figures["drained"]
    # It read what the socket's buffers held, then the close: the frames past them were dropped.
    assert code == 4408 and ended == "close-frame", figures["drained"]
    assert frames < MAX_PENDING_FRAMES
    # At most MAX_PENDING_FRAMES frames wait in the consumer (plus what the transport holds).
    assert figures["peak"] - figures["baseline"] < 2 * MAX_PENDING_FRAMES * (2000 + 400) + 16 * MB
