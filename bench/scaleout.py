"""Scale-out: two nodes of a deployment (each a daphne process, or with --deployment production a
gunicorn + uvicorn pair) behind the same PostgreSQL and Redis.

1. Throughput, one node: C senders each posting as fast as acknowledged into its own private
   conversation, the peer's socket receiving; acknowledged sends/s, ack p99, delivery latency
   and loss. Then node B starts and the same runs on two nodes: senders spread over both, each
   peer's socket on the other node than its sender. The ratio two/one is printed.
2. Across processes: a group of G members, the sender posting to node A and every receiver's
   socket on node B, at an offered rate; then the reverse (posting to B, sockets on A).
   Send-to-receive latency per delivery and to the last recipient, loss, duplicates and
   reordering counted exactly, gap fills from the server logs.

    .venv/bin/python bench/scaleout.py --deployment daphne --clients 16 --group 100 --rate 2000 --seconds 10
    .venv/bin/python bench/scaleout.py --deployment production --clients 16 --group 100 --rate 2000 --seconds 10
"""

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import connect_receivers, deliver_to_group, post_closed_loop, wait_delivered
from bench.harness import CpuMeter, Deployment, add_deployment_argument
from bench.report import delivery_figures, percentile, report
from bench.seed import analyze, create_database, django_setup, seed_users


def seed(clients, group_size):
    from chat.services import private_conversation_open
    from groups.services import group_create

    senders, peers = seed_users(clients, "sos"), seed_users(clients, "sop")
    pairs = []
    for (sender, sender_token), (peer, peer_token) in zip(senders, peers, strict=True):
        conversation, _ = private_conversation_open(user=sender, target_user_id=peer.pk)
        pairs.append((sender_token, peer_token, conversation.pk))
    members = seed_users(group_size, "sog")
    group = group_create(
        owner=members[0][0], name=f"scale-out {group_size}", member_ids=[str(u.pk) for u, _ in members[1:]]
    )
    analyze()
    return pairs, group.conversation_id, members


async def throughput(pairs, nodes, seconds, meter):
    """Sender i posts to nodes[i % n]; its peer's socket is on the next node (the same with one)."""
    stop = asyncio.Event()
    receivers, tasks = [], []
    for offset, node in enumerate(nodes):
        # the peers of senders posting to the node before this one
        tokens = [peer for i, (_, peer, _) in enumerate(pairs) if (i + 1) % len(nodes) == offset]
        got, listening = await connect_receivers(node.ws_port, tokens, stop)
        receivers.append(iter(got))
        tasks.extend(listening)
    peer_receiver = [next(receivers[(i + 1) % len(nodes)]) for i in range(len(pairs))]
    targets = [(nodes[i % len(nodes)].rest_port, token, cid) for i, (token, _, cid) in enumerate(pairs)]
    await asyncio.sleep(1)
    await post_closed_loop(targets, 1)  # warm up every process
    await asyncio.sleep(0.5)
    meter.start()
    latencies, errors, elapsed, sent = await post_closed_loop(targets, seconds)
    groups = [(sent[i], [peer_receiver[i]]) for i in range(len(pairs))]
    await wait_delivered(groups)
    meter.stop()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    cpu_servers, cpu_pg, _ = meter.used
    return {
        "acknowledged sends/s": len(latencies) / elapsed,
        "ack p50 ms": percentile(latencies, 0.5) * 1000,
        "ack p99 ms": percentile(latencies, 0.99) * 1000,
        "send errors": len(errors),
        **delivery_figures(groups, elapsed),
        "server CPU ms/msg": cpu_servers / max(len(latencies), 1) * 1000,
        "PostgreSQL CPU ms/msg": cpu_pg / max(len(latencies), 1) * 1000,
    }


async def across(sender_node, receiver_node, conversation_id, members, rate, seconds):
    sent, receivers, errors, attempted, acks = await deliver_to_group(
        sender_node.rest_port, receiver_node.ws_port, conversation_id, members, rate, seconds
    )
    figures = {
        "messages/s sent": attempted / seconds,
        "ack p99 ms": percentile(acks, 0.99) * 1000,
        **delivery_figures([(sent, receivers)], seconds),
    }
    return figures, errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_deployment_argument(parser)
    parser.add_argument("--clients", type=int, default=16, help="senders in the throughput runs")
    parser.add_argument("--group", type=int, default=100, help="members of the group delivered across nodes")
    parser.add_argument("--rate", type=float, default=2000, help="offered deliveries/s across nodes")
    parser.add_argument("--seconds", type=float, default=10, help="per run")
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    pairs, conversation_id, members = seed(args.clients, args.group)
    command = (
        f".venv/bin/python bench/scaleout.py --deployment {args.deployment} --clients {args.clients} "
        f"--group {args.group} --rate {args.rate:g} --seconds {args.seconds:g}"
    )
    failed = False
    node_a = Deployment(args.deployment)
    node_b = None
    try:
        one = asyncio.run(throughput(pairs, [node_a], args.seconds, CpuMeter(node_a.servers)))
        report(f"scale-out throughput: {args.clients} senders, one node, {args.deployment}", one, command)
        node_b = Deployment(args.deployment)
        meter = CpuMeter(node_a.servers + node_b.servers)
        two = asyncio.run(throughput(pairs, [node_a, node_b], args.seconds, meter))
        two["sends/s two nodes / one node"] = two["acknowledged sends/s"] / max(one["acknowledged sends/s"], 1e-9)
        report(f"scale-out throughput: {args.clients} senders, two nodes, {args.deployment}", two, command)
        failed |= bool(one["lost"] or two["lost"] or one["send errors"] or two["send errors"])

        for name, sender_node, receiver_node in (("A to B", node_a, node_b), ("B to A", node_b, node_a)):
            gaps_before = node_a.gap_fills() + node_b.gap_fills()
            figures, errors = asyncio.run(
                across(sender_node, receiver_node, conversation_id, members, args.rate, args.seconds)
            )
            figures["gap fills"] = node_a.gap_fills() + node_b.gap_fills() - gaps_before
            figures["send errors"] = len(errors)
            report(
                f"scale-out delivery {name}: group of {args.group}, {args.rate:g} deliveries/s offered, "
                f"sender on one node, receivers on the other, {args.deployment}",
                figures,
                command,
            )
            failed |= bool(figures["lost"] or errors)
    finally:
        node_a.stop()
        if node_b is not None:
            node_b.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
