"""A receiver's TCP connection is reset at random points while 100+ messages are sent; it resumes
with since= on the same or the other process and ends up with exactly the committed messages."""

import asyncio
import random

from tests.faults.clients import Receiver, Sender, assert_delivery_invariant, open_group
from tests.faults.infra import async_wait_for, fault_marks
from tests.servers import register

pytestmark = fault_marks()

MESSAGES_PER_SENDER = 60
CUTS_PER_RECEIVER = 3


async def send_all(sender, conversation_id, count, concurrency=3):
    queue = list(range(count))

    async def worker():
        while queue:
            n = queue.pop(0)
            await sender.send(conversation_id, f"{sender.name} #{n}", f"{sender.name}-{n}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def cut_at(receiver, points):
    """Resets the receiver's connection as soon as it has processed each count of messages."""
    for point in points:
        await async_wait_for(lambda p=point: len(receiver.messages) >= p and receiver.connected, 60)
        receiver.cut()


async def test_receivers_cut_at_random_points_resume_without_loss(start_servers, seed):
    a, b = start_servers(2)
    rng = random.Random(seed)
    alice, bob, carol = (register(a.base, name) for name in ("alice", "bob", "carol"))
    conversation = await open_group(a.base, alice, [bob, carol])
    servers = [a.ws, b.ws]
    receivers = [
        Receiver("bob", bob["token"], servers, seed=seed),
        Receiver("carol", carol["token"], servers, seed=seed),
        Receiver("alice-phone", alice["token"], servers, seed=seed),  # gets her own messages with temp_id
    ]
    for receiver in receivers:
        receiver.start()
    await async_wait_for(lambda: all(r.connected for r in receivers), 20, message="receivers connected")

    total = 2 * MESSAGES_PER_SENDER
    cutters = [
        asyncio.create_task(cut_at(r, sorted(rng.sample(range(5, total - 5), CUTS_PER_RECEIVER)))) for r in receivers
    ]
    senders = [Sender(u["username"], u["token"], [a.base, b.base], seed=seed) for u in (alice, carol)]
    try:
        await asyncio.wait_for(asyncio.gather(*(send_all(s, conversation, MESSAGES_PER_SENDER) for s in senders)), 120)
        await asyncio.wait_for(asyncio.gather(*cutters), 60)
        # A cut may come after the last message: the receiver reconnects all the same.
        await async_wait_for(lambda: all(r.connected for r in receivers), 20, message="receivers back")
        committed = await assert_delivery_invariant(
            {r: [conversation] for r in receivers},
            [conversation],
            temp_ids=[f"{s.name}-{n}" for s in senders for n in range(MESSAGES_PER_SENDER)],
            base=b.base,
            token=bob["token"],
        )
    finally:
        for task in cutters:
            task.cancel()
        for receiver in receivers:
            await receiver.stop()
        for sender in senders:
            await sender.aclose()

    assert len(committed[conversation]) == total
    for sender in senders:
        assert not sender.problems and not sender.failures, (sender.problems, sender.failures)
    for receiver in receivers:
        assert receiver.cuts == CUTS_PER_RECEIVER
        assert receiver.connections >= CUTS_PER_RECEIVER + 1, receiver.summary()
    # Frames carry the sender's temp_id on the sender's own devices only.
    own = [m for m in receivers[2].messages if m["sender_id"] == alice["user_id"]]
    assert own and all(m["temp_id"].startswith("alice-") for m in own)
    assert all("temp_id" not in m for m in receivers[0].messages)
