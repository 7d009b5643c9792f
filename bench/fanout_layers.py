"""Fan-out designs compared, standalone against the real Redis (no Django server, no database).

N receivers are spread over P real subprocesses, each an asyncio process standing in for a
server process; the parent sends messages to all of them at increasing offered rates through:

- core: channels-redis RedisChannelLayer, each receiver a channel in one group, group_send per
  message (what a Channels consumer in a group gets);
- pubsub: channels-redis RedisPubSubChannelLayer, the same with its group_send;
- hub: what imserver does (realtime/bus.py, its real Hub): one Redis pub/sub subscription per
  process, the event published once with its recipient list [[user id, event id], ...], each
  process handing the frame to its local receivers;
- core-per-user and pubsub-per-user (not in the default set): a layer with a group per user,
  which is how Channels would address a user's devices with per-user event ids (the hub's one
  publish carries them for every recipient): a group_send per recipient.

For each design and rate: deliveries/s achieved, loss and duplicates counted exactly (every
receiver must get every message once), reordering, send-to-receive latency p50/p99/max, and CPU
per delivery of the receiving processes, the sender and the Redis server (the machine's one
Redis: other users of it count too). Receivers record a message when the layer hands it over
(the hub's side mimics the consumer: a queue and a drain task), before any socket write.

    .venv/bin/python bench/fanout_layers.py --receivers 100 --processes 2 --rates 2000,5000,10000,20000,40000
"""

import argparse
import asyncio
import collections
import os
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import environment, redis_client, redis_server_pid
from bench.processes import process_cpu
from bench.report import percentile, report

LAYERS = ("core", "pubsub", "hub", "core-per-user", "pubsub-per-user")
DEFAULT_LAYERS = "core,pubsub,hub"
GROUP = "bench"
# A new_message event's data as the server encodes it (about 330 bytes).
EVENT_DATA = orjson.dumps(
    {
        "message_id": "m123456",
        "conversation_id": "c4242",
        "sender_id": "1717",
        "sender_name": "Alice Example",
        "sender_avatar": None,
        "type": "text",
        "content": "The quick brown fox jumps over the lazy dog; the five boxing wizards jump quickly.",
        "media": None,
        "caption": None,
        "call": None,
        "status": "sent",
        "created_at": "2026-05-01T12:34:56.789012Z",
        "updated_at": "2026-05-01T12:34:56.789012Z",
    }
).decode()


def hub_setup(tag):
    """The real realtime.bus, configured without a project (it reads REDIS_URL and the cache key
    prefix) -> (bus, its channel). The channel is the bench's own: Redis pub/sub channels are
    server-wide, not per database, and "imserver:bus" would reach every imserver process on this
    Redis, other developers' included."""
    from django.conf import settings

    if not settings.configured:
        cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": tag}
        settings.configure(REDIS_URL=environment()["REDIS_URL"], CACHES={"default": cache})
    from realtime import bus

    return bus, bus.channel_name()


def channel_layer(name, tag):
    url = environment()["REDIS_URL"]
    if name.startswith("pubsub"):
        from channels_redis.pubsub import RedisPubSubChannelLayer

        return RedisPubSubChannelLayer(hosts=[url], prefix=tag)
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=[url], prefix=tag)  # the defaults: capacity 100, expiry 60 s


# --- The receiving processes -------------------------------------------------------------------


class BenchConnection:
    """Stands in for realtime.consumers.EventConsumer on the hub's side: deliver() queues the frame
    and starts a drain task if none runs, as the consumer does before its socket write."""

    def __init__(self, index, arrivals):
        self.index = index
        self.arrivals = arrivals
        self.pending = collections.deque()
        self.sender = None

    def deliver(self, event_id, text):
        self.pending.append((event_id, text))
        if self.sender is None or self.sender.done():
            self.sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self):
        while self.pending:
            event_id, _text = self.pending.popleft()
            self.arrivals.append((self.index, event_id, time.time()))


async def worker(layer_name, first, count, tag):
    arrivals = []  # (receiver index, message number, arrival time)
    tasks = []
    if layer_name == "hub":
        bus, _ = hub_setup(tag)
        hub = bus.Hub()
        await hub.start()
        for index in range(first, first + count):
            hub.register(index, BenchConnection(index, arrivals))
    else:
        layer = channel_layer(layer_name, tag)

        async def receive(index, channel):
            while True:
                message = await layer.receive(channel)
                arrivals.append((index, message["n"], time.time()))

        for index in range(first, first + count):
            channel = await layer.new_channel()
            await layer.group_add(f"u{index}" if layer_name.endswith("-per-user") else GROUP, channel)
            tasks.append(asyncio.ensure_future(receive(index, channel)))
    print("ready", flush=True)

    loop = asyncio.get_running_loop()
    first_number = 0
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        if line[0] == "reset":  # a new step: messages numbered below it are late ones of the last
            first_number = int(line[1])
            arrivals.clear()
            print("ok", flush=True)
        elif line[0] == "count":
            print(sum(1 for _, n, _ in arrivals if n >= first_number), flush=True)
        elif line[0] == "report":
            print(orjson.dumps([a for a in arrivals if a[1] >= first_number]).decode(), flush=True)
    for task in tasks:
        task.cancel()
    os._exit(0)  # the layers' pools need no orderly shutdown here


# --- The sender and the measurement -------------------------------------------------------------


class Sender:
    def __init__(self, layer_name, receivers, tag):
        self.layer_name, self.receivers, self.tag = layer_name, receivers, tag
        if layer_name == "hub":
            self.bus, self.channel = hub_setup(tag)
            self.client = None
        else:
            self.layer = channel_layer(layer_name, tag)

    async def send(self, number):
        if self.layer_name == "hub":
            if self.client is None:
                import redis.asyncio

                self.client = redis.asyncio.Redis.from_url(environment()["REDIS_URL"])
            recipients = [[index, number] for index in range(self.receivers)]
            message = self.bus.event_message("new_message", EVENT_DATA, recipients)
            await self.client.publish(self.channel, orjson.dumps(message))
        elif self.layer_name.endswith("-per-user"):
            # One after the other, as a request's after-commit hook would (concurrently, they
            # exhaust the pool: redis-py's asyncio pool raises past 100 connections).
            message = {"type": "new_message", "n": number, "data": EVENT_DATA}
            for index in range(self.receivers):
                await self.layer.group_send(f"u{index}", message)
        else:
            await self.layer.group_send(GROUP, {"type": "new_message", "n": number, "data": EVENT_DATA})


class Workers:
    """The receiving subprocesses, driven over their stdin/stdout."""

    def __init__(self, layer_name, receivers, processes, tag):
        self.args = layer_name, receivers, processes, tag
        self.processes = []

    async def start(self):
        layer_name, receivers, processes, tag = self.args
        per = -(-receivers // processes)
        for first in range(0, receivers, per):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--worker",
                layer_name,
                "--first",
                str(first),
                "--count",
                str(min(per, receivers - first)),
                "--tag",
                tag,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**30,
                env=environment(),
            )
            self.processes.append(process)
        replies = await self.ask(None, timeout=60)
        assert all(reply == "ready" for reply in replies), replies

    async def ask(self, command, timeout=30):
        for process in self.processes:
            if command is not None:
                process.stdin.write(f"{command}\n".encode())
        replies = []
        for process in self.processes:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
            if not line:
                raise RuntimeError("a receiving process exited")
            replies.append(line.decode().strip())
        return replies

    def cpu_seconds(self):
        return sum(process_cpu(process.pid) for process in self.processes)

    async def stop(self):
        for process in self.processes:
            if process.returncode is None:
                try:
                    process.stdin.write(b"quit\n")
                    await asyncio.wait_for(process.wait(), 5)
                except (TimeoutError, ConnectionError):
                    process.kill()
                    await process.wait()


async def step(sender, workers, receivers, rate, seconds, first_number, drain, max_inflight=64):
    """One offered rate for `seconds`, then until everything arrived (or nothing more arrives)."""
    await workers.ask(f"reset {first_number}")
    message_rate = rate / receivers
    redis_pid = redis_server_pid()
    cpu_before = workers.cpu_seconds(), time.process_time(), process_cpu(redis_pid)
    sent_at = {}
    inflight = set()
    send_errors = 0

    async def send(number):
        nonlocal send_errors
        sent_at[number] = time.time()
        try:
            await asyncio.wait_for(sender.send(number), 30)
        except Exception:
            send_errors += 1

    started = time.monotonic()
    number = first_number
    while time.monotonic() < started + seconds:
        if len(inflight) >= max_inflight:  # the sender cannot keep up: the rate sent drops
            await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            continue
        task = asyncio.ensure_future(send(number))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        number += 1
        await asyncio.sleep(max(0, started + (number - first_number) / message_rate - time.monotonic()))
    if inflight:
        await asyncio.wait(inflight, timeout=30)
    send_window = time.monotonic() - started
    expected = (number - first_number) * receivers
    until, last, still_since = time.monotonic() + drain, -1, time.monotonic()
    while time.monotonic() < until:
        got = sum(int(reply) for reply in await workers.ask("count"))
        if got >= expected:
            break
        if got != last:
            last, still_since = got, time.monotonic()
        elif time.monotonic() - still_since > 1.5:
            break
        await asyncio.sleep(0.1)
    cpu_after = workers.cpu_seconds(), time.process_time(), process_cpu(redis_pid)
    arrivals = [a for reply in await workers.ask("report", timeout=60) for a in orjson.loads(reply)]
    return figures(arrivals, sent_at, receivers, send_window, send_errors, cpu_before, cpu_after), number


def figures(arrivals, sent_at, receivers, send_window, send_errors, cpu_before, cpu_after):
    seen = [set() for _ in range(receivers)]
    previous = [-1] * receivers
    latencies = []
    duplicates = reordered = 0
    last_arrival = 0.0
    for index, number, arrived in arrivals:  # each process's arrivals are in its arrival order
        if number in seen[index]:
            duplicates += 1
            continue
        seen[index].add(number)
        if number < previous[index]:
            reordered += 1
        previous[index] = number
        latencies.append(arrived - sent_at[number])
        last_arrival = max(last_arrival, arrived)
    latencies.sort()
    delivered = len(latencies)
    span = max(last_arrival - min(sent_at.values()), send_window) if sent_at else send_window
    cpu = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    per_delivery = 1e6 / max(delivered, 1)
    return {
        "messages/s sent": len(sent_at) / send_window,
        "deliveries/s": delivered / span,
        "lost": len(sent_at) * receivers - delivered,
        "duplicates": duplicates,
        "reordered": reordered,
        "send errors": send_errors,
        "p50 ms": percentile(latencies, 0.5) * 1000,
        "p99 ms": percentile(latencies, 0.99) * 1000,
        "max ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "receivers CPU us/delivery": cpu[0] * per_delivery,
        "sender CPU us/delivery": cpu[1] * per_delivery,
        "Redis CPU us/delivery": cpu[2] * per_delivery,
        "total CPU us/delivery": sum(cpu) * per_delivery,
    }


def cleanup(tag):
    client = redis_client()
    keys = list(client.scan_iter(match=f"{tag}*", count=1000))
    if keys:
        client.delete(*keys)


async def measure(layer_name, args, tag):
    workers = Workers(layer_name, args.receivers, args.processes, tag)
    rows = []
    try:
        await workers.start()
        sender = Sender(layer_name, args.receivers, tag)
        await sender.send(0)  # warm up the sender's connections
        await asyncio.sleep(1)
        number = 1
        for rate in args.rates:
            result, number = await step(sender, workers, args.receivers, rate, args.seconds, number, args.drain)
            rows.append((rate, result))
            report(
                f"fan-out: {layer_name}, {args.receivers} receivers in {args.processes} processes, "
                f"{rate:g} deliveries/s offered",
                result,
                command(args),
            )
            await asyncio.sleep(1)  # let a backlog of the last step clear
    finally:
        await workers.stop()
        cleanup(tag)
    return rows


def ceiling(rows, p99_ms):
    """The highest offered rate met in full: zero loss, >= 95% of it achieved, p99 within bound."""
    met = [
        rate
        for rate, f in rows
        if f["lost"] == 0 and not f["duplicates"] and f["deliveries/s"] >= 0.95 * rate and f["p99 ms"] <= p99_ms
    ]
    return max(met) if met else 0


def command(args):
    return (
        f".venv/bin/python bench/fanout_layers.py --layers {','.join(args.layers)} --receivers {args.receivers} "
        f"--processes {args.processes} --rates {','.join(f'{r:g}' for r in args.rates)} --seconds {args.seconds:g}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default=DEFAULT_LAYERS, help=f"comma-separated, of {', '.join(LAYERS)}")
    parser.add_argument("--receivers", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2, help="receiving processes (server processes)")
    parser.add_argument("--rates", default="2000,5000,10000,20000,40000", help="offered deliveries/s, in steps")
    parser.add_argument("--seconds", type=float, default=3, help="per step")
    parser.add_argument("--drain", type=float, default=5, help="seconds at most to wait for late deliveries")
    parser.add_argument("--p99-ms", type=float, default=50, help="latency bound of the ceiling")
    parser.add_argument("--worker", choices=LAYERS, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker(args.worker, args.first, args.count, args.tag))
        return 0
    args.layers = args.layers.split(",")
    args.rates = [float(r) for r in args.rates.split(",")]
    unknown = set(args.layers) - set(LAYERS)
    if unknown:
        parser.error(f"unknown layers {', '.join(sorted(unknown))}")

    results = {}
    for layer_name in args.layers:
        tag = f"benchfan{uuid.uuid4().hex[:8]}"
        results[layer_name] = asyncio.run(measure(layer_name, args, tag))

    print(f"\n== fan-out designs: {args.receivers} receivers in {args.processes} processes")
    print(f"  {'design':<17}{'offered/s':>10}{'achieved/s':>11}{'lost':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU us':>8}")
    for layer_name, rows in results.items():
        for rate, f in rows:
            print(
                f"  {layer_name:<17}{rate:>10.0f}{f['deliveries/s']:>11.0f}{f['lost']:>8}{f['p50 ms']:>8.1f}"
                f"{f['p99 ms']:>8.1f}{f['total CPU us/delivery']:>8.1f}"
            )
    ceilings = {layer_name: ceiling(rows, args.p99_ms) for layer_name, rows in results.items()}
    report(
        f"fan-out ceiling: {args.receivers} receivers in {args.processes} processes "
        f"(highest offered deliveries/s with zero loss, >= 95% achieved, p99 <= {args.p99_ms:g} ms)",
        {f"{layer_name} deliveries/s": rate for layer_name, rate in ceilings.items()},
        command(args),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
