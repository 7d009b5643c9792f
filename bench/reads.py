"""History and lists: pages of 50 messages at varying depth, and the conversation list with 20, 50
and 100 rows, each under concurrent clients; requests/s and latency p50/p99, the latency of one
client alone, and the SQL queries one request makes (counted in-process with Django's test client).

    .venv/bin/python bench/reads.py --deployment daphne --clients 16 --seconds 5
    .venv/bin/python bench/reads.py --deployment production --clients 16 --seconds 5
"""

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import Http
from bench.harness import CpuMeter, Deployment, add_deployment_argument
from bench.report import percentile, report
from bench.seed import analyze, create_database, django_setup, seed_users

HISTORY_DEPTH = 5000  # messages in the conversation whose history is paged


def seed():
    """A conversation with HISTORY_DEPTH messages, and a reader in 100 conversations. As in a busy
    chat, every 5th message replies to the one before, every 7th mentions the reader and every 3rd
    has two reactions (contract 18): the page renders all of them."""
    from chat.models import Conversation, Mention, Message, Reaction
    from chat.services import private_conversation_open

    (reader, token), *peers = seed_users(101, "rd")
    conversations = [private_conversation_open(user=reader, target_user_id=peer.pk)[0] for peer, _ in peers]
    deep = conversations[0]
    Message.objects.bulk_create(
        [
            Message(
                conversation=deep,
                seq=n,
                sender=peers[0][0] if n % 2 else reader,
                content=f"message {n}",
                mentions=[reader.pk] if n % 7 == 0 else [],
            )
            for n in range(1, HISTORY_DEPTH + 1)
        ],
        batch_size=1000,
    )
    by_seq = dict(Message.objects.filter(conversation=deep).values_list("seq", "pk"))
    for seq in range(5, HISTORY_DEPTH + 1, 5):
        Message.objects.filter(pk=by_seq[seq]).update(reply_to_id=by_seq[seq - 1])
    Mention.objects.bulk_create(
        [Mention(message_id=by_seq[seq], user=reader) for seq in range(7, HISTORY_DEPTH + 1, 7)]
    )
    Reaction.objects.bulk_create(
        [
            Reaction(message_id=by_seq[seq], user=user, emoji=emoji)
            for seq in range(3, HISTORY_DEPTH + 1, 3)
            for user, emoji in ((reader, "👍"), (peers[0][0], "🎉"))
        ],
        batch_size=1000,
    )
    Message.objects.filter(pk__in=[by_seq[seq] for seq in range(3, HISTORY_DEPTH + 1, 3)]).update(reaction_count=2)
    newest = Message.objects.filter(conversation=deep).order_by("-seq").first()
    Conversation.objects.filter(pk=deep.pk).update(last_seq=HISTORY_DEPTH, last_message=newest)
    for conversation, (peer, _) in zip(conversations[1:], peers[1:], strict=True):
        message = Message.objects.create(conversation=conversation, seq=1, sender=peer, content="hi")
        Conversation.objects.filter(pk=conversation.pk).update(last_seq=1, last_message=message)
    anchors = list(Message.objects.filter(conversation=deep).values_list("pk", flat=True))
    analyze()
    return token, deep.pk, anchors


def queries_per_request(path, token):
    import warnings

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    warnings.filterwarnings("ignore", "No directory at")
    with CaptureQueriesContext(connection) as queries:
        response = Client().get(path, headers={"Authorization": f"Bearer {token}"}, HTTP_HOST="127.0.0.1")
    assert response.status_code == 200, response.content[:200]
    return len(queries.captured_queries)


async def load(port, clients, seconds, make_path, token):
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds

    async def client():
        nonlocal errors
        http = Http("127.0.0.1", port)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status, _ = await http.request("GET", make_path(), token=token)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
        http.close()

    started = time.monotonic()
    await asyncio.gather(*[client() for _ in range(clients)])
    return sorted(latencies), errors, time.monotonic() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_deployment_argument(parser)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    token, conversation_id, anchors = seed()
    scenarios = {
        "history page of 50 (random depth)": lambda: (
            f"/v1/conversations/c{conversation_id}/messages?limit=50&before=m{random.choice(anchors)}"
        ),
        "conversation list, 20 rows": lambda: "/v1/conversations?limit=20",
        "conversation list, 50 rows": lambda: "/v1/conversations?limit=50",
        "conversation list, 100 rows": lambda: "/v1/conversations?limit=100",
    }
    queries = {name: queries_per_request(make_path(), token) for name, make_path in scenarios.items()}
    failed = 0
    with Deployment(args.deployment, ws=False) as deployment:
        port = deployment.rest_port
        asyncio.run(load(port, 2, 1, scenarios["conversation list, 20 rows"], token))  # warm up
        for name, make_path in scenarios.items():
            meter = CpuMeter(deployment.servers)
            meter.start()
            latencies, errors, elapsed = asyncio.run(load(port, args.clients, args.seconds, make_path, token))
            meter.stop()
            cpu_server, cpu_pg, _ = meter.used
            failed += errors
            single, _, _ = asyncio.run(load(port, 1, 2, make_path, token))  # unloaded latency
            report(
                f"{name}: {args.clients} clients, {args.deployment}",
                {
                    "requests/s": len(latencies) / elapsed,
                    "p50 ms": percentile(latencies, 0.5) * 1000,
                    "p99 ms": percentile(latencies, 0.99) * 1000,
                    "one client p50 ms": percentile(single, 0.5) * 1000,
                    "queries/request": queries[name],
                    "errors": errors,
                    "server CPU ms/request": cpu_server / max(len(latencies), 1) * 1000,
                    "PostgreSQL CPU ms/request": cpu_pg / max(len(latencies), 1) * 1000,
                },
                f".venv/bin/python bench/reads.py --deployment {args.deployment} --clients {args.clients} "
                f"--seconds {args.seconds:g}",
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
