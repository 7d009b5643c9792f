"""Push throughput: one worker (`manage.py run_worker`, PUSH_WORKER=true) against a fake FCM HTTP v1
server on loopback (tests/push/fakes.py: OAuth2 token exchange, signed assertions, the real
`messages:send` shape), for messages to a group of 500 members of whom 250 have an offline,
push-registered device.

Each message is posted over REST and its 250 pushes awaited before the next one. Prints pushes/s,
the time from the send's acknowledgement (the commit happened before it) to each push's receipt
(p50, p99, last), and the send's latency with pushes configured against the same group with no
provider configured, measured in the same run. Target (issue 13): the last push within 2 s, the
send latency unchanged within noise.

    .venv/bin/python bench/push.py --messages 10
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import Http
from bench.harness import RESULTS, Deployment, environment
from bench.processes import ROOT
from bench.report import percentile, report
from bench.seed import analyze, create_database, django_setup, seed_users

MEMBERS = 500
OFFLINE_DEVICES = 250


class ArrivalTimes(list):
    """The fake's list of accepted pushes, which also notes when each one arrived."""

    def __init__(self):
        super().__init__()
        self.times = []

    def append(self, push):
        self.times.append(time.monotonic())
        super().append(push)


def seed():
    from accounts.models import Device
    from groups.services import group_create

    members = seed_users(MEMBERS, "push")
    owner, owner_token = members[0]
    group = group_create(owner=owner, name="push bench", member_ids=[str(u.pk) for u, _ in members[1:]])
    Device.objects.bulk_create(
        [
            Device(user=user, platform="android", push_provider="fcm", push_token=f"bench-{user.pk}")
            for user, _ in members[1 : OFFLINE_DEVICES + 1]
        ]
    )
    analyze()
    return group.conversation_id, owner_token


async def send_messages(port, conversation_id, token, count, after_each=None):
    """Posts `count` messages one after another; returns each send's (latency, acknowledged at)."""
    client = Http("127.0.0.1", port)
    path = f"/v1/conversations/c{conversation_id}/messages"
    sends = []
    try:
        for n in range(count):
            started = time.monotonic()
            status, body = await client.request("POST", path, {"type": "text", "content": f"push {n}"}, token)
            acknowledged = time.monotonic()
            if status != 201:
                raise RuntimeError(f"send answered {status}: {body[:200]!r}")
            sends.append((acknowledged - started, acknowledged))
            if after_each:
                await after_each(n)
    finally:
        client.close()
    return sends


def start_worker(env, log):
    output = open(log, "wb")  # noqa: SIM115 (closed with the process)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    worker.output = output
    return worker


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    from realtime.models import EventOutbox
    from tests.push.fakes import FakeFcm

    conversation_id, token = seed()
    warm_up = 2

    # The same group, no provider configured: nothing is queued for pushes.
    with Deployment("daphne", ws=False) as deployment:
        plain = asyncio.run(send_messages(deployment.rest_port, conversation_id, token, warm_up + args.messages))
    plain_latencies = sorted(latency for latency, _ in plain[warm_up:])

    with tempfile.TemporaryDirectory() as directory, FakeFcm(Path(directory)) as fake:
        fake.received = ArrivalTimes()
        push_env = {
            "FCM_CREDENTIALS_FILE": str(fake.credentials_file),
            "FCM_ENDPOINT": fake.url,
            "PUSH_WORKER": "true",
        }
        os.environ.update(push_env)  # the server processes' environment (bench/harness.py)
        EventOutbox.objects.all().delete()
        worker = start_worker({**environment(), **push_env}, RESULTS / "push-worker.log")
        try:
            with Deployment("daphne", ws=False) as deployment:

                async def pushes_arrived(n):
                    deadline = time.monotonic() + 30
                    while len(fake.received) < (n + 1) * OFFLINE_DEVICES and time.monotonic() < deadline:
                        await asyncio.sleep(0.002)

                sends = asyncio.run(
                    send_messages(deployment.rest_port, conversation_id, token, warm_up + args.messages, pushes_arrived)
                )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            worker.output.close()
            for name in push_env:
                del os.environ[name]

    arrivals = fake.received.times
    expected = (warm_up + args.messages) * OFFLINE_DEVICES
    delays, last_delays = [], []
    for n, (_, acknowledged) in enumerate(sends[warm_up:], start=warm_up):
        batch = [at - acknowledged for at in arrivals[n * OFFLINE_DEVICES : (n + 1) * OFFLINE_DEVICES]]
        delays.extend(batch)
        last_delays.append(max(batch) if batch else float("nan"))
    push_latencies = sorted(latency for latency, _ in sends[warm_up:])
    delays.sort()
    report(
        f"push: group of {MEMBERS}, {OFFLINE_DEVICES} offline devices, one worker, fake FCM on loopback",
        {
            "pushes received": len(arrivals),
            "pushes expected": expected,
            # A message's pushes over the time from its acknowledgement to its last push.
            "pushes/s": len(delays) / sum(last_delays),
            "ack to push p50 ms": percentile(delays, 0.50) * 1000,
            "ack to push p99 ms": percentile(delays, 0.99) * 1000,
            "ack to last push, worst message ms": max(last_delays) * 1000,
            "send p50 ms, pushes on": percentile(push_latencies, 0.50) * 1000,
            "send p50 ms, no provider": percentile(plain_latencies, 0.50) * 1000,
            "send p99 ms, pushes on": percentile(push_latencies, 0.99) * 1000,
            "send p99 ms, no provider": percentile(plain_latencies, 0.99) * 1000,
        },
        f".venv/bin/python bench/push.py --messages {args.messages}",
    )
    return 0 if len(arrivals) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
