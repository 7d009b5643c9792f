"""Delivery: a group of G members, every receiver on a WebSocket, messages posted over REST at an
offered rate; send-to-receive latency per delivery and, per message, to its last recipient.

Loss, duplicates and reordering are counted exactly: every receiver must get every acknowledged
message once, in the order of the conversation. Gap fills (events the server had to read back
from its log because the bus dropped or reordered them) are counted from the server logs: zero
under normal load is the goal.

    .venv/bin/python bench/delivery.py --group 100 --rate 5000 --seconds 10
    .venv/bin/python bench/delivery.py --group 1000 --rate 5000 --seconds 10 --deployment production
"""

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import deliver_to_group
from bench.harness import CpuMeter, Deployment, add_deployment_argument
from bench.report import delivery_figures, percentile, report
from bench.seed import analyze, create_database, django_setup, seed_users


def seed(size):
    from groups.services import group_create

    members = seed_users(size, f"g{size}x")
    owner = members[0][0]
    group = group_create(owner=owner, name=f"bench {size}", member_ids=[str(u.pk) for u, _ in members[1:]])
    analyze()
    return group.conversation_id, members


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", type=int, default=10, help="members, the sender included")
    parser.add_argument("--rate", type=float, default=1000, help="offered deliveries per second")
    parser.add_argument("--seconds", type=float, default=10)
    add_deployment_argument(parser)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    conversation_id, members = seed(args.group)
    with Deployment(args.deployment) as deployment:
        meter = CpuMeter(deployment.servers)
        sent, receivers, errors, attempted, acks = asyncio.run(
            deliver_to_group(
                deployment.rest_port, deployment.ws_port, conversation_id, members, args.rate, args.seconds, meter
            )
        )
        cpu_servers, cpu_pg, cpu_self = meter.used
        gap_fills = deployment.gap_fills()
    figures = delivery_figures([(sent, receivers)], args.seconds)
    deliveries = figures["deliveries/s"] * args.seconds
    report(
        f"delivery: group of {args.group}, {args.rate:g} deliveries/s offered, {args.deployment}",
        {
            "messages/s sent": attempted / args.seconds,
            "ack p50 ms": percentile(acks, 0.5) * 1000,
            "ack p99 ms": percentile(acks, 0.99) * 1000,
            **figures,
            "gap fills": gap_fills,
            "send errors": len(errors),
            "server CPU ms/delivery": cpu_servers / max(deliveries, 1) * 1000,
            "PostgreSQL CPU ms/message": cpu_pg / max(len(sent), 1) * 1000,
            "load generator CPU ms/delivery": cpu_self / max(deliveries, 1) * 1000,
        },
        f".venv/bin/python bench/delivery.py --group {args.group} --rate {args.rate:g} --seconds {args.seconds:g} "
        f"--deployment {args.deployment}",
    )
    return 0 if not figures["lost"] and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
