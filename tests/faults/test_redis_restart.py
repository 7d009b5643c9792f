"""Redis (no persistence) is killed and restarted under traffic: sends keep succeeding (a failed
publish never undoes a committed message), sockets recover (the hub resubscribes and resyncs
from the log) or are closed and resume, nothing is lost, and presence recovers."""

import asyncio
import random
import time

import httpx

from tests.faults.clients import Receiver, Sender, assert_delivery_invariant, auth, open_group
from tests.faults.infra import async_wait_for, fault_marks
from tests.servers import register

pytestmark = fault_marks()

MESSAGES_PER_SENDER = 100
OUTAGE_SECONDS = 2.0


def last_status(watcher, user):
    statuses = [data["status"] for type, data in watcher.others if type == "contact_status" and data["user_id"] == user]
    return statuses[-1] if statuses else None


async def test_redis_restart_under_traffic(start_servers, redis_server, seed):
    a, b = start_servers(2)
    rng = random.Random(seed)
    alice, bob, carol, dave, erin, frank = (
        register(a.base, name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")
    )
    conversation = await open_group(a.base, alice, [bob, carol])
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        for contact in (bob, erin, frank):
            response = await client.post(
                f"{a.base}/v1/contacts", json={"user_id": contact["user_id"]}, headers=auth(dave["token"])
            )
            assert response.status_code == 201, response.text
    servers = [a.ws, b.ws]
    receivers = [
        Receiver("bob-phone", bob["token"], [a.ws], seed=seed),
        Receiver("bob-laptop", bob["token"], [b.ws], seed=seed),
        Receiver("carol", carol["token"], [b.ws], seed=seed),
        Receiver("alice-phone", alice["token"], [a.ws], seed=seed),
    ]
    watcher = Receiver("dave", dave["token"], [b.ws], seed=seed)  # has bob, erin and frank as contacts
    frank_socket = Receiver("frank", frank["token"], [a.ws], seed=seed)
    erin_socket = Receiver("erin", erin["token"], [b.ws], seed=seed)
    for receiver in [*receivers, watcher, frank_socket]:
        receiver.start()
    await async_wait_for(lambda: all(r.connected for r in [*receivers, watcher, frank_socket]), 20)
    await async_wait_for(lambda: last_status(watcher, frank["user_id"]) == "online", 10, message="frank online")
    for receiver in receivers:
        receiver.urls = servers

    senders = [Sender(u["username"], u["token"], [a.base, b.base], seed=seed) for u in (alice, carol)]
    total = MESSAGES_PER_SENDER * len(senders)
    restart_after = rng.randrange(total // 5, total // 3)
    outage = {}

    async def restart_redis():
        await async_wait_for(lambda: sum(len(s.stored) for s in senders) >= restart_after, 60)
        redis_server.kill()
        outage["start"] = time.monotonic()
        # While Redis is gone: a socket is reset and resumes, frank leaves, erin arrives.
        receivers[2].cut()
        await frank_socket.stop()
        erin_socket.start()
        await async_wait_for(lambda: erin_socket.connected, 10, message="erin connected during the outage")
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage["start"])))
        outage["sent_before"] = sum(len(s.stored) for s in senders)
        redis_server.start()
        outage["end"] = time.monotonic()
        outage["sent_after"] = sum(len(s.stored) for s in senders)
        # Presence: every process re-registers its sockets in the new Redis on its heartbeat.
        client = redis_server.client()
        outage["presence_back"] = await async_wait_for(
            lambda: (
                client.scard(f"presence:{bob['user_id']}") == 2
                and client.scard(f"presence:{erin['user_id']}") == 1
                and time.monotonic()
            ),
            15,
            message="sockets registered again in the restarted Redis",
        )

    async def send_all(sender):
        queue = list(range(MESSAGES_PER_SENDER))

        async def worker():
            while queue:
                n = queue.pop(0)
                await sender.send(conversation, f"{sender.name} #{n}", f"{sender.name}-{n}")
                await asyncio.sleep(0.15)  # paced: traffic before, during and after the outage

        await asyncio.gather(*(worker() for _ in range(2)))

    restarter = asyncio.create_task(restart_redis())
    try:
        await asyncio.wait_for(asyncio.gather(*(send_all(s) for s in senders)), 180)
        await asyncio.wait_for(restarter, 30)
        await assert_delivery_invariant(
            {r: [conversation] for r in receivers},
            [conversation],
            temp_ids=[f"{s.name}-{n}" for s in senders for n in range(MESSAGES_PER_SENDER)],
        )

        # bob stayed online; erin, who came while Redis was away, and frank, who left then, are
        # shown as they are (the watcher is told, and the API agrees).
        await async_wait_for(
            lambda: (
                last_status(watcher, erin["user_id"]) == "online"
                and last_status(watcher, frank["user_id"]) == "offline"
            ),
            15,
            message=f"erin online and frank offline for the watcher (seen: {watcher.others})",
        )
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:

            async def shown(user):
                response = await http.get(f"{b.base}/v1/users/{user['user_id']}", headers=auth(dave["token"]))
                return response.json()["status"]

            assert [await shown(u) for u in (bob, erin, frank)] == ["online", "online", "offline"]
            assert last_status(watcher, bob["user_id"]) == "online"
            # And presence works on: bob's last socket closing makes him offline.
            await receivers[0].stop()
            await receivers[1].stop()
            await async_wait_for(lambda: last_status(watcher, bob["user_id"]) == "offline", 10, message="bob offline")
            assert await shown(bob) == "offline"
    finally:
        restarter.cancel()
        for receiver in [*receivers, watcher, frank_socket, erin_socket]:
            await receiver.stop()
        for sender in senders:
            await sender.aclose()

    latencies = sorted(latency for s in senders for latency in s.latencies)
    bob_seen = [data["status"] for type, data in watcher.others if data.get("user_id") == bob["user_id"]]
    print(
        f"Redis down {outage['end'] - outage['start']:.1f}s after {restart_after} sends; "
        f"{outage['sent_before'] - restart_after} sends stored while it was down, "
        f"{total - outage['sent_after']} after; "
        f"bob's presence as the watcher saw it: {bob_seen}; "
        f"send latency median {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
        f"presence registered again {outage['presence_back'] - outage['end']:.1f}s after the restart"
    )
    for sender in senders:
        assert not sender.problems and not sender.failures, (sender.problems, sender.failures)
    assert outage["sent_before"] > restart_after, "no send happened while Redis was down"
    assert total - outage["sent_after"] > 20, "too little traffic after the restart"
