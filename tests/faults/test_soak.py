"""A bounded soak with reconnect churn: several devices connect, send, disconnect (cleanly or by
a TCP reset) and resume with since= in a loop against two daphne processes. Asserted: no error
response, the delivery invariant for every device, and flat resources: each process's RSS and
open file descriptors and the (private) Redis's memory, measured idle after a warm-up and idle
again at the end.

SOAK_SECONDS sets the length of the main phase (default 20 s for CI; 120 for a real soak).

"Flat" means, between the two idle measurements:
- file descriptors other than connections to PostgreSQL and Redis: no growth beyond FD_SLACK (a
  leak of one per WebSocket connection would show as hundreds); connections to PostgreSQL at most
  DATABASE_POOL_MAX (the pool may grow up to it under load and keeps idle connections for 10
  minutes); connections to Redis at most REDIS_CONNECTIONS_MAX (redis-py pools open one per thread
  using them at once, and the threads are bounded);
- RSS: growth below max(RSS_SLACK_MB, 10 %) of the warm RSS (CPython's allocator keeps freed
  arenas and grows caches; a leak of 50 KB per connection over a 120 s soak is ~25 MB);
- Redis used_memory: growth below REDIS_SLACK_BYTES (idle, nothing but presence keys of sockets
  that are open and rate-limit counters, which are off here, should remain), and no socket left
  registered in presence once every device is gone.
"""

import asyncio
import os
import random
import time
from collections import Counter

from tests.faults.clients import Receiver, Sender, assert_delivery_invariant, open_group, open_private
from tests.faults.infra import Sampler, async_wait_for, fault_marks
from tests.servers import database_address, register

pytestmark = fault_marks()

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS") or 20)
WARMUP_SECONDS = max(5.0, SOAK_SECONDS / 5)
FD_SLACK = 4
RSS_SLACK_MB = 12
REDIS_SLACK_BYTES = 512 * 1024
REDIS_CONNECTIONS_MAX = 16
MB = 1024 * 1024


class Meter(Sampler):
    """Samples the processes' RSS and fds and Redis's memory every second (for the figures)."""

    def __init__(self, servers, redis_server):
        super().__init__()
        self.servers = servers
        self.redis = redis_server
        self.database_port = database_address()[1]  # here: Django's connection is per thread

    def measure(self):
        figures = {"redis": self.redis.used_memory()}
        for server in self.servers:
            tcp = server.tcp_fds()
            figures[server.port] = {
                "rss": server.rss(),
                "fds": server.open_fds(),
                "db": tcp.get(self.database_port, 0),
                "redis": tcp.get(self.redis.port, 0),
            }
        return figures


async def test_soak_with_reconnect_churn(start_servers, redis_server, seed):
    a, b = start_servers(2)
    names = [f"user{n}" for n in range(6)]
    users = {name: register(a.base, name) for name in names}
    group = await open_group(a.base, users["user0"], [users[n] for n in names[1:]], name="Soak")
    pairs = [("user0", "user1"), ("user2", "user3"), ("user4", "user5")]
    conversations = {name: [group] for name in names}
    for first, second in pairs:
        conversation = await open_private(a.base, users[first], users[second])
        conversations[first].append(conversation)
        conversations[second].append(conversation)
    servers = [a.ws, b.ws]
    devices = [Receiver(name, users[name]["token"], servers, seed=seed) for name in names]
    devices += [Receiver(f"{name}-tablet", users[name]["token"], servers, seed=seed) for name in ("user0", "user1")]
    owner = {device: device.name.split("-")[0] for device in devices}
    senders = {name: Sender(name, users[name]["token"], [a.base, b.base], seed=seed) for name in names}
    counters = Counter()
    churn = Counter()

    async def device_loop(device, until):
        device_rng = random.Random(f"{seed}:{device.name}:churn")
        while time.monotonic() < until:
            await asyncio.sleep(device_rng.uniform(0.3, 1.5))
            roll = device_rng.random()
            if roll < 0.35:
                churn["reset"] += device.cut()
            elif roll < 0.7:
                churn["pause"] += 1
                await device.pause(device_rng.uniform(0.0, 1.0))

    async def sender_loop(name, until):
        sender_rng = random.Random(f"{seed}:{name}:send")
        while time.monotonic() < until:
            conversation = sender_rng.choice(conversations[name])
            n = counters[name]
            counters[name] += 1
            await senders[name].send(conversation, f"{name} says {n}", f"{name}-{n}")
            await asyncio.sleep(sender_rng.uniform(0.1, 0.4))

    async def phase(seconds):
        for device in devices:
            device.start()
        until = time.monotonic() + seconds
        await asyncio.wait_for(
            asyncio.gather(*(device_loop(d, until) for d in devices), *(sender_loop(n, until) for n in names)),
            seconds + 60,
        )

    async def quiesce():
        """Every device gone; wait until the processes have let go of them."""
        for device in devices:
            await device.stop()
        client = redis_server.client()
        try:
            await async_wait_for(lambda: client.zcard("presence:deadlines") == 0, 15)
        except AssertionError:
            left = client.zrange("presence:deadlines", 0, -1)
            raise AssertionError(f"sockets left registered in presence after every device closed: {left}") from None
        await asyncio.sleep(1.0)

    try:
        with Meter([a, b], redis_server) as meter:
            await phase(WARMUP_SECONDS)
            await quiesce()
            warm = meter.measure()
            started = time.monotonic()
            await phase(SOAK_SECONDS)
            soak_seconds = time.monotonic() - started
            # Catch up (resume with since=) and check every device, then go idle again.
            for device in devices:
                device.start()
            await assert_delivery_invariant(
                {device: conversations[owner[device]] for device in devices},
                sorted({c for cs in conversations.values() for c in cs}),
                temp_ids=[f"{name}-{n}" for name in names for n in range(counters[name])],
                timeout=120,
            )
            await quiesce()
            final = meter.measure()
    finally:
        for device in devices:
            await device.stop()
        for sender in senders.values():
            await sender.aclose()

    sent = sum(counters.values())
    connections = sum(device.connections for device in devices)
    print(
        f"soak: {soak_seconds:.0f}s after a {WARMUP_SECONDS:.0f}s warm-up; {sent} messages sent, "
        f"{connections} connections ({dict(churn)}), failed attempts "
        f"{dict(sum((s.failures for s in senders.values()), Counter()))}"
    )
    for server in (a, b):
        w, f = warm[server.port], final[server.port]
        peak_rss = max(sample[server.port]["rss"] for sample in meter.samples)
        peak_fds = max(sample[server.port]["fds"] for sample in meter.samples)
        print(
            f"process {server.port}: RSS warm {w['rss'] / MB:.1f} MB -> end {f['rss'] / MB:.1f} MB "
            f"(peak {peak_rss / MB:.1f}); fds warm {w['fds']} (db {w['db']}, redis {w['redis']}) -> end {f['fds']} "
            f"(db {f['db']}, redis {f['redis']}), peak {peak_fds}"
        )
    print(f"redis used_memory warm {warm['redis'] / 1024:.0f} KB -> end {final['redis'] / 1024:.0f} KB")

    for sender in senders.values():
        assert not sender.problems and not sender.failures, (sender.name, sender.problems, dict(sender.failures))
    assert connections > 2 * len(devices), "no churn happened"
    for server in (a, b):
        w, f = warm[server.port], final[server.port]
        assert f["fds"] - f["db"] - f["redis"] <= w["fds"] - w["db"] - w["redis"] + FD_SLACK, (w, f)
        assert f["db"] <= int(server.environment["DATABASE_POOL_MAX"]) and f["redis"] <= REDIS_CONNECTIONS_MAX, f
        assert f["rss"] - w["rss"] < max(RSS_SLACK_MB * MB, w["rss"] // 10), (w["rss"], f["rss"])
    assert final["redis"] - warm["redis"] < REDIS_SLACK_BYTES, (warm["redis"], final["redis"])
