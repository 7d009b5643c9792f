"""Typing relay: one typist in a group of G members (100 is the largest that gets typing), the
server side of every frame measured in-process: the membership check, the throttle in Redis, the
audience from the process caches and the publish on the bus to every other member. The number
of database queries during the measured frames is reported: it must be 0 (contract 14's hot path).

The throttle is lifted so that every frame is relayed (the worst case); sockets are not part of
it (bench/delivery.py measures delivery to sockets).

    .venv/bin/python bench/typing_relay.py --group 100 --frames 5000
"""

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import report
from bench.seed import analyze, create_database, django_setup, seed_users


def listening_hub():
    """Subscribes this process to the bus (a loop in a thread), as a socket process is: only
    then are the relay's caches trusted."""
    from realtime.bus import hub

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(hub.start(), loop).result(10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", type=int, default=100, help="members, the typist included")
    parser.add_argument("--frames", type=int, default=5000)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat import typing
    from groups.services import group_create

    members = seed_users(args.group, f"t{args.group}x")
    typist = members[0][0]
    group = group_create(owner=typist, name="typing bench", member_ids=[str(u.pk) for u, _ in members[1:]])
    analyze()
    listening_hub()
    typing.THROTTLE_MS = 1  # every frame relayed (time.sleep below lets each throttle lapse)

    def frame():
        time.sleep(0.0011)
        typing.typing_relay_rollback_unsafe(user_id=typist.pk, conversation_id=group.conversation_id)

    frame()  # warm-up: the caches fill
    started = time.perf_counter()
    for _ in range(args.frames):
        time.sleep(0.0011)
    sleeping = time.perf_counter() - started  # what the sleeps alone take, subtracted below
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        for _ in range(args.frames):
            frame()
        elapsed = time.perf_counter() - started - sleeping
    report(
        f"typing relay: group of {args.group}",
        {
            "frames/s (relay only, sleeps excluded)": args.frames / elapsed,
            "us/frame": elapsed / args.frames * 1e6,
            "recipients/frame": args.group - 1,
            "database queries": len(queries),
        },
        f".venv/bin/python bench/typing_relay.py --group {args.group} --frames {args.frames}",
    )
    return 0 if not len(queries) else 1


if __name__ == "__main__":
    sys.exit(main())
