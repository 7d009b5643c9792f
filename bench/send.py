"""Send throughput: N concurrent senders, each posting into its own conversation over REST.

Prints acknowledged sends/s, ack latency p50/p99/max, CPU per message (server, PostgreSQL, the
load generator), and checks the stored row count against the acknowledgements.

    .venv/bin/python bench/send.py --server daphne --clients 16 --seconds 10
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, Http, Server, analyze, create_database, django_setup, percentile, report


def seed(clients):
    from bench.common import seed_users
    from chat.services import private_conversation_open

    senders = seed_users(clients, "snd")
    peers = seed_users(clients, "peer")
    pairs = []
    for (sender, token), (peer, _) in zip(senders, peers, strict=True):
        conversation, _ = private_conversation_open(user=sender, target_user_id=peer.pk)
        pairs.append((token, conversation.pk))
    analyze()
    return pairs


async def run(port, pairs, seconds):
    latencies, errors = [], []
    run_id = f"{time.time():.6f}"
    deadline = time.monotonic() + seconds

    async def sender(index, token, conversation_id):
        http = Http("127.0.0.1", port)
        path = f"/v1/conversations/c{conversation_id}/messages"
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status, body = await http.request(
                "POST", path, {"content": "hello", "temp_id": f"{run_id}-{index}-{n}"}, token
            )
            if status == 201:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append((status, body[:200]))
            n += 1
        http.close()

    started = time.monotonic()
    await asyncio.gather(*[sender(i, token, cid) for i, (token, cid) in enumerate(pairs)])
    return latencies, errors, time.monotonic() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="daphne", help="daphne, uvicorn or gunicorn (started here)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    from chat.models import Message

    pairs = seed(args.clients)
    with Server(args.server) as server:
        asyncio.run(run(server.port, pairs[:1], 1))  # warm up: imports, pool, first queries
        before = Message.objects.filter(conversation_id__in=[c for _, c in pairs]).count()
        meter = CpuMeter([server])
        meter.start()
        latencies, errors, elapsed = asyncio.run(run(server.port, pairs, args.seconds))
        meter.stop()
        cpu_server, cpu_pg, cpu_self = meter.used
    stored = Message.objects.filter(conversation_id__in=[c for _, c in pairs]).count() - before
    latencies.sort()
    acked = len(latencies)
    report(
        f"send: {args.clients} clients, {args.server}",
        {
            "acknowledged sends/s": acked / elapsed,
            "ack p50 ms": percentile(latencies, 0.50) * 1000,
            "ack p99 ms": percentile(latencies, 0.99) * 1000,
            "ack max ms": latencies[-1] * 1000 if latencies else float("nan"),
            "errors": len(errors),
            "stored rows": stored,
            "stored == acknowledged": stored == acked,
            "server CPU ms/msg": cpu_server / max(acked, 1) * 1000,
            "PostgreSQL CPU ms/msg": cpu_pg / max(acked, 1) * 1000,
            "load generator CPU ms/msg": cpu_self / max(acked, 1) * 1000,
        },
        f".venv/bin/python bench/send.py --server {args.server} --clients {args.clients} --seconds {args.seconds:g}",
    )
    if errors:
        print("  first errors:", errors[:3])
    return 0 if not errors and stored == acked else 1


if __name__ == "__main__":
    sys.exit(main())
