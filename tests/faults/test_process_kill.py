"""kill -9 of a server process in the middle of sends and of open sockets: senders retry with the
same temp_id on the other process, receivers resume there with since=; one stored message per
temp_id, nothing half written, every receiver complete."""

import asyncio
import random
from collections import Counter

from tests.faults.clients import (
    Receiver,
    Sender,
    assert_delivery_invariant,
    db,
    log_consistency_problems,
    open_group,
)
from tests.faults.infra import async_wait_for, fault_marks
from tests.servers import register

pytestmark = fault_marks()

MESSAGES_PER_SENDER = 80
CONCURRENCY = 4


async def test_kill_9_mid_traffic_loses_nothing_and_duplicates_nothing(start_servers, seed):
    a, b = start_servers(2)
    rng = random.Random(seed)
    alice, bob, carol, dave = (register(a.base, name) for name in ("alice", "bob", "carol", "dave"))
    conversation = await open_group(a.base, alice, [bob, carol, dave])
    # Most sockets start on the process that will die; after any disconnect they pick either.
    receivers = [
        Receiver("bob-phone", bob["token"], [a.ws], seed=seed),
        Receiver("bob-laptop", bob["token"], [b.ws], seed=seed),
        Receiver("carol", carol["token"], [a.ws], seed=seed),
        Receiver("dave", dave["token"], [a.ws], seed=seed),
        Receiver("alice-phone", alice["token"], [a.ws], seed=seed),
    ]
    for receiver in receivers:
        receiver.start()
    await async_wait_for(lambda: all(r.connected for r in receivers), 20, message="receivers connected")
    for receiver in receivers:
        receiver.urls = [a.ws, b.ws]

    # Every send tries the doomed process first, then the other one.
    senders = [Sender(u["username"], u["token"], [a.base, b.base], seed=seed) for u in (alice, carol)]
    total = MESSAGES_PER_SENDER * len(senders)
    kill_after = rng.randrange(total * 2 // 5, total * 3 // 5)

    async def killer():
        await async_wait_for(lambda: sum(len(s.stored) for s in senders) >= kill_after, 120)
        a.kill()

    async def send_all(sender):
        queue = list(range(MESSAGES_PER_SENDER))

        async def worker():
            while queue:
                n = queue.pop(0)
                await sender.send(conversation, f"{sender.name} #{n}", f"{sender.name}-{n}", first=0)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    kill_task = asyncio.create_task(killer())
    try:
        await asyncio.wait_for(asyncio.gather(*(send_all(s) for s in senders)), 180)
        await asyncio.wait_for(kill_task, 10)
        committed = await assert_delivery_invariant(
            {r: [conversation] for r in receivers},
            [conversation],
            temp_ids=[f"{s.name}-{n}" for s in senders for n in range(MESSAGES_PER_SENDER)],
            base=b.base,
            token=dave["token"],
        )
        problems = await db(log_consistency_problems, conversation)
    finally:
        kill_task.cancel()
        for receiver in receivers:
            await receiver.stop()
        for sender in senders:
            await sender.aclose()

    failures = dict(sum((s.failures for s in senders), Counter()))
    print(
        f"killed after {kill_after} of {total} sends; failed attempts {failures}; "
        f"sends answered 200 (stored by an attempt whose answer was lost) {sum(s.statuses[200] for s in senders)}"
    )
    assert not problems, problems
    assert len(committed[conversation]) == total
    for sender in senders:
        assert not sender.problems, sender.problems
        assert sender.failures, "no send ever hit the dead process"
    for receiver in receivers[:1] + receivers[2:]:
        # Their process died under them: no close frame, then a resume on the survivor.
        assert receiver.close_codes[None] >= 1 and receiver.connections >= 2, receiver.summary()
