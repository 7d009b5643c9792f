"""Typing across two real daphne processes on one PostgreSQL and one Redis: the throttle, the
caches' invalidation through the bus and the last socket's stop hold across processes."""

import asyncio
import json

import httpx
import pytest
import websockets

from tests.realtime.test_cluster import auth, next_frame
from tests.servers import Server, cluster_marks, register

pytestmark = cluster_marks("several processes share state only through PostgreSQL and Redis")
THROTTLE = 3.1  # seconds: the server's throttle of starts, plus a margin


@pytest.fixture
def cluster(tmp_path):
    servers = [Server(tmp_path) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


async def quiet(socket, seconds=0.5):
    """Whether no typing frame reaches the socket for a while."""
    try:
        await next_frame(socket, "typing", timeout=seconds)
    except TimeoutError:
        return True
    return False


async def test_a_block_on_one_process_silences_typing_relayed_by_the_other(cluster):
    a, b = cluster
    alice, bob, carol = (register(a.base, name) for name in ("alice", "bob", "carol"))
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"type": "group", "name": "Team", "members": [bob["user_id"], carol["user_id"]]}
        group = (await client.post(f"{a.base}/v1/conversations", json=body, headers=auth(alice))).json()
        typing = json.dumps({"type": "typing", "data": {"conversation_id": group["conversation_id"]}})
        async with (
            websockets.connect(f"{a.ws}?token={alice['token']}") as alice_on_a,
            websockets.connect(f"{b.ws}?token={alice['token']}") as alice_on_b,
            websockets.connect(f"{b.ws}?token={bob['token']}") as bob_socket,
            websockets.connect(f"{b.ws}?token={carol['token']}") as carol_socket,
        ):
            await asyncio.sleep(0.3)  # all live
            await alice_on_a.send(typing)  # relayed by A, which caches the audience
            assert (await next_frame(bob_socket, "typing"))["data"]["state"] == "start"
            await next_frame(carol_socket, "typing")
            await alice_on_b.send(typing)  # the throttle is shared: B drops it
            assert await quiet(bob_socket)

            blocked = await client.put(f"{b.base}/v1/blocks/{alice['user_id']}", headers=auth(bob))
            assert blocked.status_code == 204
            await asyncio.sleep(THROTTLE)
            await alice_on_a.send(typing)  # A's cached audience was dropped by the bus
            await next_frame(carol_socket, "typing")
            assert await quiet(bob_socket)

            await alice_on_a.close()  # alice is still connected on B: no stop
            assert await quiet(carol_socket)
            await alice_on_b.close()
            stop = await next_frame(carol_socket, "typing")
            assert stop["data"]["state"] == "stop" and stop["data"]["user_id"] == alice["user_id"]
