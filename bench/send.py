"""Send throughput: N concurrent senders, each posting into its own conversation over REST.

Prints acknowledged sends/s, ack latency p50/p99/max, CPU per message (server, PostgreSQL, the
load generator), and checks the stored row count against the acknowledgements.

    .venv/bin/python bench/send.py --deployment daphne --clients 16 --seconds 10
    .venv/bin/python bench/send.py --deployment production --clients 16 --seconds 10
"""

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import post_closed_loop
from bench.harness import CpuMeter, Deployment, add_deployment_argument
from bench.report import percentile, report
from bench.seed import analyze, create_database, django_setup, seed_users


def seed(clients):
    from chat.services import private_conversation_open

    senders = seed_users(clients, "snd")
    peers = seed_users(clients, "peer")
    pairs = []
    for (sender, token), (peer, _) in zip(senders, peers, strict=True):
        conversation, _ = private_conversation_open(user=sender, target_user_id=peer.pk)
        pairs.append((token, conversation.pk))
    analyze()
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_deployment_argument(parser)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    from chat.models import Message

    pairs = seed(args.clients)
    with Deployment(args.deployment, ws=False) as deployment:
        targets = [(deployment.rest_port, token, conversation_id) for token, conversation_id in pairs]
        asyncio.run(post_closed_loop(targets[:1], 1))  # warm up: imports, pool, first queries
        before = Message.objects.filter(conversation_id__in=[c for _, c in pairs]).count()
        meter = CpuMeter(deployment.servers)
        meter.start()
        latencies, errors, elapsed, _ = asyncio.run(post_closed_loop(targets, args.seconds))
        meter.stop()
        cpu_server, cpu_pg, cpu_self = meter.used
    stored = Message.objects.filter(conversation_id__in=[c for _, c in pairs]).count() - before
    latencies.sort()
    acked = len(latencies)
    report(
        f"send: {args.clients} clients, {args.deployment}",
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
        f".venv/bin/python bench/send.py --deployment {args.deployment} --clients {args.clients} "
        f"--seconds {args.seconds:g}",
    )
    if errors:
        print("  first errors:", errors[:3])
    return 0 if not errors and stored == acked else 1


if __name__ == "__main__":
    sys.exit(main())
