"""Delivery: a group of G members, every receiver on a WebSocket, messages posted over REST at an
offered rate; send-to-receive latency per delivery and, per message, to its last recipient.

Loss, duplicates and reordering are counted exactly: every receiver must get every acknowledged
message once, in the order of the conversation. Gap fills (events the server had to read back
from its log because the bus dropped them) are counted from the server logs: zero under normal
load is the goal.

    .venv/bin/python bench/delivery.py --group 100 --rate 5000 --seconds 10
    .venv/bin/python bench/delivery.py --group 1000 --rate 5000 --seconds 10 --ws-server uvicorn
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, Http, Server, analyze, create_database, django_setup, percentile, report


def seed(size):
    from bench.common import seed_users
    from groups.services import group_create

    members = seed_users(size, f"g{size}x")
    owner = members[0][0]
    group = group_create(owner=owner, name=f"bench {size}", member_ids=[str(u.pk) for u, _ in members[1:]])
    analyze()
    return group.conversation_id, members


class Receiver:
    def __init__(self):
        self.arrivals = {}  # message id -> (arrival time, position)
        self.order = []
        self.duplicates = 0

    async def listen(self, url, ready, stop):
        async with websockets.connect(url, max_size=2**20, max_queue=None, ping_interval=None) as socket:
            ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), 0.5)
                except TimeoutError:
                    continue
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


async def run(rest_port, ws_port, conversation_id, members, rate, seconds, meter):
    sender_token = members[0][1]
    receivers = [Receiver() for _ in members[1:]]
    stop = asyncio.Event()
    ready = [asyncio.Event() for _ in receivers]
    url = f"ws://127.0.0.1:{ws_port}/ws?token="
    tasks = []
    for batch in range(0, len(receivers), 100):  # connect in batches, as clients would trickle in
        for i in range(batch, min(batch + 100, len(receivers))):
            tasks.append(asyncio.ensure_future(receivers[i].listen(url + members[i + 1][1], ready[i], stop)))
        await asyncio.gather(*[r.wait() for r in ready[batch : batch + 100]])
    await asyncio.sleep(1)
    meter.start()  # CPU is counted over the sends and their delivery, not the connects

    message_rate = rate / len(receivers)
    sent = {}  # message id -> send time
    errors = []
    path = f"/v1/conversations/c{conversation_id}/messages"
    deadline = time.monotonic() + seconds
    # Open loop: a message every 1/message_rate seconds, whatever the answers; enough
    # connections that a slow answer never holds the next send back.
    connections = [Http("127.0.0.1", rest_port) for _ in range(8)]
    free = asyncio.Queue()
    for http in connections:
        free.put_nowait(http)
    inflight = set()

    async def post(n):
        http = await free.get()
        try:
            started = time.time()
            status, body = await http.request(
                "POST", path, {"content": f"m{n}", "temp_id": f"d{started}-{n}"}, sender_token
            )
            if status == 201:
                sent[int(orjson.loads(body)["message_id"][1:])] = started
            else:
                errors.append(status)
        finally:
            free.put_nowait(http)

    n, start = 0, time.monotonic()
    while time.monotonic() < deadline:
        task = asyncio.ensure_future(post(n))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        n += 1
        await asyncio.sleep(max(0, start + n / message_rate - time.monotonic()))
    await asyncio.gather(*inflight)
    drain_until = time.monotonic() + 5
    expected = set(sent)
    while time.monotonic() < drain_until and any(not expected <= r.arrivals.keys() for r in receivers):
        await asyncio.sleep(0.1)
    meter.stop()
    stop.set()
    await asyncio.gather(*tasks)
    for http in connections:
        http.close()
    return sent, receivers, errors, n / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", type=int, default=10, help="members, the sender included")
    parser.add_argument("--rate", type=float, default=1000, help="offered deliveries per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--ws-server", default="daphne", help="server for the sockets (daphne, uvicorn)")
    parser.add_argument("--rest-server", default=None, help="server for the REST sends (default: the same)")
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    conversation_id, members = seed(args.group)
    servers = [Server(args.ws_server)]
    if args.rest_server:
        servers.append(Server(args.rest_server))
    ws, rest = servers[0], servers[-1]
    meter = CpuMeter(servers)
    try:
        sent, receivers, errors, message_rate = asyncio.run(
            run(rest.port, ws.port, conversation_id, members, args.rate, args.seconds, meter)
        )
        cpu_servers, cpu_pg, cpu_self = meter.used
    finally:
        for server in servers:
            server.stop()
    gap_fills = sum(Path(s.log.name).read_text(errors="replace").count("filling a gap") for s in servers)

    latencies, last_recipient = [], []
    lost = reordered = 0
    committed = sorted(sent)
    for receiver in receivers:
        got = [m for m in receiver.order if m in sent]
        lost += len(committed) - len(got)
        reordered += sum(1 for a, b in zip(got, got[1:], strict=False) if b < a)
    for message_id, sent_at in sent.items():
        arrivals = [r.arrivals[message_id] - sent_at for r in receivers if message_id in r.arrivals]
        latencies.extend(arrivals)
        if len(arrivals) == len(receivers):
            last_recipient.append(max(arrivals))
    latencies.sort()
    last_recipient.sort()
    deliveries = len(latencies)
    rest_flag = f" --rest-server {args.rest_server}" if args.rest_server else ""
    report(
        f"delivery: group of {args.group}, {args.rate:g} deliveries/s offered, {args.ws_server}{rest_flag}",
        {
            "messages/s sent": message_rate,
            "deliveries/s": deliveries / args.seconds,
            "delivery p50 ms": percentile(latencies, 0.5) * 1000,
            "delivery p99 ms": percentile(latencies, 0.99) * 1000,
            "delivery max ms": (latencies[-1] if latencies else float("nan")) * 1000,
            "last recipient p99 ms": percentile(last_recipient, 0.99) * 1000,
            "lost": lost,
            "duplicates": sum(r.duplicates for r in receivers),
            "reordered": reordered,
            "gap fills": gap_fills,
            "send errors": len(errors),
            "server CPU ms/delivery": cpu_servers / max(deliveries, 1) * 1000,
            "PostgreSQL CPU ms/message": cpu_pg / max(len(sent), 1) * 1000,
            "load generator CPU ms/delivery": cpu_self / max(deliveries, 1) * 1000,
        },
        f".venv/bin/python bench/delivery.py --group {args.group} --rate {args.rate:g} --seconds {args.seconds:g} "
        f"--ws-server {args.ws_server}{rest_flag}",
    )
    return 0 if not lost and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
