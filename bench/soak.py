"""Soak with reconnect churn against two nodes, bounded by --seconds (default 60).

Clients are users in groups (of --group-size) and in one private conversation each. Each one
loops: open its socket on one node with since=<the last event id it processed> (the two nodes in
turn), post 1-3 messages over REST to either node, read frames a while, close (one time in five
abruptly, without a closing handshake), pause, again. Sampled during the run: RSS and open file
descriptors of every server process, and Redis used_memory (the whole Redis server's: other
users of it count too); printed before the load, at its start (after a tenth of it, warmed up),
middle and end, and after every client has gone.

At the end every client resumes once more and reads until idle; then the delivery invariant is
checked: every client has exactly the committed messages of each of its conversations (read from
the database), once, in order, and its event ids had no gap across all its reconnects. Error
responses (non-2xx REST, error frames, sockets closed by the server, failed handshakes) must be 0.

    .venv/bin/python bench/soak.py --deployment daphne --seconds 60
    .venv/bin/python bench/soak.py --deployment production --seconds 60
"""

import argparse
import asyncio
import collections
import contextlib
import os
import random
import sys
import time
from pathlib import Path

import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import Http
from bench.harness import Deployment, add_deployment_argument, redis_client
from bench.report import report
from bench.seed import analyze, create_database, django_setup, seed_users


def seed(clients, group_size):
    from chat.services import private_conversation_open
    from groups.services import group_create
    from realtime.selectors import stream_position

    users = seed_users(clients, "soak")
    conversations = collections.defaultdict(list)  # user index -> conversation ids
    for start in range(0, clients, group_size):
        members = list(range(start, min(start + group_size, clients)))
        if len(members) < 2:
            continue
        owner = users[members[0]][0]
        group = group_create(owner=owner, name="soak", member_ids=[str(users[i][0].pk) for i in members[1:]])
        for i in members:
            conversations[i].append(group.conversation_id)
    for i in range(0, clients - 1, 2):
        conversation, _ = private_conversation_open(user=users[i][0], target_user_id=users[i + 1][0].pk)
        conversations[i].append(conversation.pk)
        conversations[i + 1].append(conversation.pk)
    analyze()
    return [
        Client(index, token, conversations[index], stream_position(user_id=user.pk))
        for index, (user, token) in enumerate(users)
    ]


class Client:
    def __init__(self, index, token, conversations, since):
        self.index, self.token, self.conversations = index, token, conversations
        self.last_id = since
        self.received = collections.defaultdict(list)  # conversation id -> message ids, in arrival order
        self.gaps = 0
        self.errors = []
        self.connects = 0
        self.retries = 0

    def take(self, raw):
        frame = orjson.loads(raw)
        if frame["type"] == "error":
            self.errors.append(f"error frame {frame['data']}")
            return
        if "id" not in frame:
            return  # pong, relayed frames: not in the event log
        event_id = int(frame["id"])
        if event_id != self.last_id + 1:
            self.gaps += 1
            self.errors.append(f"event id {event_id} after {self.last_id}")
        self.last_id = max(self.last_id, event_id)
        if frame["type"] == "new_message":
            data = frame["data"]
            self.received[int(data["conversation_id"][1:])].append(int(data["message_id"][1:]))

    async def session(self, ws_port, read_seconds, then=None):
        """One socket from since=last_id: run `then` while reading, read `read_seconds` more (or,
        with read_seconds None, until 2 s pass without a frame), close."""
        url = f"ws://127.0.0.1:{ws_port}/ws?token={self.token}&since={self.last_id}"
        try:
            socket = await websockets.connect(url, open_timeout=15, ping_interval=None, max_queue=None)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            self.errors.append(f"connect: {exc!r}")
            if then is not None:
                await then
            return
        self.connects += 1
        abrupt = read_seconds is not None and random.random() < 0.2
        try:
            reading = asyncio.ensure_future(self._read(socket, read_seconds))
            if then is not None:
                await then
            await reading
        finally:
            if abrupt:
                socket.transport.abort()
            else:
                await socket.close()

    async def _read(self, socket, seconds):
        idle = 2.0 if seconds is None else seconds
        until = time.monotonic() + (30 if seconds is None else seconds)
        while time.monotonic() < until:
            try:
                raw = await asyncio.wait_for(socket.recv(), min(idle, max(until - time.monotonic(), 0.01)))
            except TimeoutError:
                if seconds is None:
                    return
                continue
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                self.errors.append(f"socket closed by the server: {code}")
                return
            self.take(raw)

    async def post(self, http_by_port, ports):
        """One message over REST. A connection the server reset while idle (gunicorn's keep-alive
        is 2 s) is retried once with the same temp_id, as HTTP clients and load balancers retry
        a stale pooled connection; the temp_id makes the retry idempotent."""
        port = random.choice(ports)
        path = f"/v1/conversations/c{random.choice(self.conversations)}/messages"
        body = {"content": "soak", "temp_id": f"soak-{self.index}-{time.time_ns()}"}
        for attempt in range(2):
            try:
                status, answer = await asyncio.wait_for(http_by_port[port].request("POST", path, body, self.token), 30)
            except (OSError, TimeoutError, ConnectionError) as exc:
                http_by_port[port].close()
                if attempt == 0 and not isinstance(exc, TimeoutError):
                    self.retries += 1
                    continue
                self.errors.append(f"POST: {exc!r}")
                return
            if status != 201 and not (status == 200 and attempt):  # 200: the first attempt had stored it
                self.errors.append(f"POST {status}: {answer[:200]!r}")
            return


async def churn(client, nodes, deadline):
    http_by_port = {node.rest_port: Http("127.0.0.1", node.rest_port) for node in nodes}
    ports = list(http_by_port)
    turn = client.index
    while time.monotonic() < deadline:
        turn += 1

        async def sends():
            for _ in range(random.randint(1, 3)):
                await client.post(http_by_port, ports)

        await client.session(nodes[turn % len(nodes)].ws_port, random.uniform(0.2, 1.5), sends())
        await asyncio.sleep(random.uniform(0, 0.5))
    for http in http_by_port.values():
        http.close()


class Sampler:
    """RSS and fds of every server process and Redis used_memory, every `every` seconds."""

    def __init__(self, nodes, every):
        self.servers = [server for node in nodes for server in node.servers]
        self.every = every
        self.samples = []  # (seconds since start, {server: (rss, fds)}, redis used_memory)
        self.redis = redis_client()
        self.started = time.monotonic()

    def sample(self):
        self.samples.append(
            (
                time.monotonic() - self.started,
                [(server.rss(), server.open_fds()) for server in self.servers],
                int(self.redis.info("memory")["used_memory"]),
            )
        )
        return self.samples[-1]

    async def run(self, stop):
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    def at(self, seconds):
        return min(self.samples, key=lambda sample: abs(sample[0] - seconds))


async def soak(clients, nodes, seconds, every):
    sampler = Sampler(nodes, every)
    before = sampler.sample()
    sampler.kinds_before = [server.fd_kinds() for server in sampler.servers]
    stop = asyncio.Event()
    sampling = asyncio.ensure_future(sampler.run(stop))
    started = time.monotonic()

    async def sample_end():  # under load, just before the deadline
        await asyncio.sleep(max(seconds - 0.5, 0))
        return sampler.sample()

    end, *_ = await asyncio.gather(sample_end(), *[churn(client, nodes, started + seconds) for client in clients])
    stop.set()
    await sampling
    # Every client resumes once more and reads what it missed, on either node.
    await asyncio.gather(*[client.session(nodes[i % len(nodes)].ws_port, None) for i, client in enumerate(clients)])
    await asyncio.sleep(2)
    after = sampler.sample()
    sampler.kinds_after = [server.fd_kinds() for server in sampler.servers]
    return sampler, before, end, after, time.monotonic() - started


def check(clients):
    """The delivery invariant against the committed messages."""
    from chat.models import Message

    ids = {c for client in clients for c in client.conversations}
    committed = collections.defaultdict(list)
    for conversation_id, message_id in (
        Message.objects.filter(conversation_id__in=ids)
        .order_by("conversation_id", "seq")
        .values_list("conversation_id", "pk")
    ):
        committed[conversation_id].append(message_id)
    missing = duplicates = out_of_order = unexpected = clients_exact = 0
    for client in clients:
        exact = True
        for conversation_id in client.conversations:
            got, want = client.received.get(conversation_id, []), committed[conversation_id]
            if got != want:
                exact = False
                missing += len(set(want) - set(got))
                duplicates += len(got) - len(set(got))
                unexpected += len(set(got) - set(want))
                wanted = set(want)
                seen = [m for m in got if m in wanted]
                out_of_order += sum(1 for a, b in zip(seen, seen[1:], strict=False) if b <= a)
        exact &= not (client.received.keys() - set(client.conversations))
        clients_exact += exact
    return {
        "messages committed": sum(len(v) for v in committed.values()),
        "clients with exactly the committed messages": f"{clients_exact} of {len(clients)}",
        "missing": missing,
        "duplicates": duplicates,
        "out of order": out_of_order,
        "unexpected": unexpected,
    }, clients_exact == len(clients)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_deployment_argument(parser)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples")
    args = parser.parse_args(argv)
    # Tokens must outlive the soak (the server closes a socket whose token expires).
    os.environ["ACCESS_TOKEN_LIFETIME"] = str(int(args.seconds) + 900)

    create_database()
    django_setup()
    clients = seed(args.clients, args.group_size)
    nodes = []
    try:
        nodes.append(Deployment(args.deployment))
        nodes.append(Deployment(args.deployment))
        sampler, before, end, after, elapsed = asyncio.run(soak(clients, nodes, args.seconds, args.sample))
        gap_fills = sum(node.gap_fills() for node in nodes)
    finally:
        for node in nodes:
            node.stop()

    points = {
        "before load": before,
        "start": sampler.at(args.seconds * 0.1),
        "middle": sampler.at(args.seconds * 0.5),
        "end": end,
        "after (clients gone)": after,
    }
    print(f"\n== soak samples ({len(sampler.samples)} taken every {args.sample:g} s)")
    names = [f"{server.kind}:{server.port}" for server in sampler.servers]
    print(f"  {'':<22}" + "".join(f"{name:>24}" for name in names) + f"{'Redis used_memory':>20}")
    for label, (at, per_server, redis_memory) in points.items():
        cells = "".join(f"{rss / 2**20:>13.1f} MB {fds:>4} fd" for rss, fds in per_server)
        print(f"  {label + f' ({at:.0f} s)':<22}{cells}{redis_memory / 2**20:>17.1f} MB")

    print("  open fds by kind, before load -> after (clients gone):")
    for server, before_kinds, after_kinds in zip(
        sampler.servers, sampler.kinds_before, sampler.kinds_after, strict=True
    ):
        kinds = ", ".join(f"{k} {before_kinds[k]} -> {after_kinds[k]}" for k in sorted(before_kinds | after_kinds))
        print(f"    {server.kind}:{server.port}: {kinds}")

    invariant, exact = check(clients)
    errors = [error for client in clients for error in client.errors]
    total = lambda sample, i: sum(values[i] for values in sample[1])  # noqa: E731
    figures = {
        "seconds": elapsed,
        "connects": sum(client.connects for client in clients),
        **invariant,
        "event id gaps seen by clients": sum(client.gaps for client in clients),
        "error responses": len(errors),
        "stale keep-alive connections retried": sum(client.retries for client in clients),
        "gap fills (server logs)": gap_fills,
        **{f"server RSS {label} MB": total(sample, 0) / 2**20 for label, sample in points.items()},
        **{f"server open fds {label}": total(sample, 1) for label, sample in points.items()},
        "Redis used_memory start MB": points["start"][2] / 2**20,
        "Redis used_memory end MB": end[2] / 2**20,
        "RSS growth start to end MB": (total(end, 0) - total(points["start"], 0)) / 2**20,
        "fds after - before": total(after, 1) - total(before, 1),
    }
    report(
        f"soak: {args.clients} clients with reconnect churn on two nodes, {args.seconds:g} s, {args.deployment}",
        figures,
        f".venv/bin/python bench/soak.py --deployment {args.deployment} --seconds {args.seconds:g} "
        f"--clients {args.clients} --group-size {args.group_size}",
    )
    if errors:
        print("  first errors:", errors[:5])
    return 0 if exact and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
