"""CPU of one request, in-process: the REST send into a 20-member group and into a private
conversation, marking a private conversation read (over REST) and delivered (the WebSocket
frame's handler), and the history page of 50 at random depth (bench/reads.py's conversation,
with replies, mentions and reactions). REST requests go through Django's WSGI handler as
gunicorn calls it (every middleware, the URL resolver, DRF, the token's user, the pool's
checkout), with no sockets and no load generator in the figure.

Prints, per request kind, the server's process CPU per request (minimum and median of batches)
and the PostgreSQL backends' CPU per request, read from /proc. Deterministic enough to compare
two commits back to back on a quiet machine, which the load tools' figures are not:

    .venv/bin/python bench/request_cpu.py
    .venv/bin/python bench/request_cpu.py --batches 20 --per-batch 50
"""

import argparse
import io
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import reads
from bench.processes import process_cpu
from bench.report import report
from bench.seed import create_database, django_setup, seed_users

GROUP_SIZE = 20


def seed_group():
    from groups.services import group_create

    (owner, token), *members = seed_users(GROUP_SIZE, "cpu")
    group = group_create(owner=owner, name="request cpu", member_ids=[str(user.pk) for user, _ in members])
    return token, group.conversation_id


def seed_private():
    from chat.services import private_conversation_open

    (sender, token), (peer, _) = seed_users(2, "cpupriv")
    conversation, _ = private_conversation_open(user=sender, target_user_id=peer.pk)
    return token, conversation.pk


def seed_reads(count):
    """A private conversation with `count` messages from one member, and the other's token: each
    read request moves the reader's pointer one message further (receipts, events and all)."""
    from chat.services import message_send, private_conversation_open
    from imserver.api import format_id

    (sender, _), (reader, token) = seed_users(2, "cpuread")
    conversation, _ = private_conversation_open(user=sender, target_user_id=reader.pk)
    ids = [
        format_id("m", message_send(sender=sender, conversation_id=conversation.pk, content=f"m{i}")[0].pk)
        for i in range(count)
    ]
    return reader, token, conversation.pk, iter(ids)


def call(application, method, path, token, body=None):
    """One request through the WSGI application, as gunicorn would make it."""
    path, _, query = path.partition("?")
    payload = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(payload)),
        "wsgi.input": io.BytesIO(payload),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    statuses = []
    chunks = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    if not statuses[0].startswith(("200", "201")):
        raise RuntimeError(f"{method} {path}: {statuses[0]}")


def postgres_backends():
    """The pids of the PostgreSQL backends connected to this database (the pool's connections)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()]


def measure(request, batches, per_batch):
    """-> (process CPU per request of each batch in ms, PostgreSQL backends' CPU per request in ms)."""
    for _ in range(per_batch):  # warm up: the pool's connections, prepared statements, caches
        request()
    backends = postgres_backends()
    postgres_before = sum(process_cpu(pid) for pid in backends)
    per_request = []
    for _ in range(batches):
        started = time.process_time()
        for _ in range(per_batch):
            request()
        per_request.append((time.process_time() - started) * 1000 / per_batch)
    postgres = (sum(process_cpu(pid) for pid in backends) - postgres_before) * 1000 / (batches * per_batch)
    return per_request, postgres


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--per-batch", type=int, default=50)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    sender_token, group_id = seed_group()
    private_token, private_id = seed_private()
    _, read_token, read_id, unread = seed_reads((args.batches + 1) * args.per_batch)
    receiver, _, received_id, undelivered = seed_reads((args.batches + 1) * args.per_batch)
    reader_token, deep_id, anchors = reads.seed()
    sent = iter(range(10**9))
    from chat import frames

    scenarios = {
        "REST send, group of 20": lambda: call(
            application, "POST", f"/v1/conversations/c{group_id}/messages", sender_token,
            {"type": "text", "content": "hello", "temp_id": f"t{next(sent)}-{time.time_ns()}"},
        ),
        "REST send, private": lambda: call(
            application, "POST", f"/v1/conversations/c{private_id}/messages", private_token,
            {"type": "text", "content": "hello", "temp_id": f"p{next(sent)}-{time.time_ns()}"},
        ),
        "mark read, private (a message further each time)": lambda: call(
            application, "POST", f"/v1/conversations/c{read_id}/read", read_token, {"message_id": next(unread)},
        ),
        # The WebSocket frame's handler as the consumer calls it (the socket's own work aside).
        "delivered ack frame, private (a message further each time)": lambda: frames.message_delivered(
            receiver.pk, {"conversation_id": f"c{received_id}", "message_id": next(undelivered)},
        ),
        "history page of 50 (random depth)": lambda: call(
            application, "GET", f"/v1/conversations/c{deep_id}/messages?limit=50&before=m{random.choice(anchors)}",
            reader_token,
        ),
    }  # fmt: skip
    for name, request in scenarios.items():
        per_request, postgres = measure(request, args.batches, args.per_batch)
        report(
            f"request CPU: {name}",
            {
                "server CPU ms/request, min": min(per_request),
                "server CPU ms/request, median": statistics.median(per_request),
                "PostgreSQL CPU ms/request": postgres,
                "requests": args.batches * args.per_batch,
            },
            f".venv/bin/python bench/request_cpu.py --batches {args.batches} --per-batch {args.per_batch}",
        )


if __name__ == "__main__":
    main()
