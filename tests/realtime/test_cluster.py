"""Two real daphne processes on one PostgreSQL and one Redis: delivery and presence across them."""

import asyncio
import json

import httpx
import pytest
import websockets

from tests.servers import Server, cluster_marks, register

pytestmark = cluster_marks("several processes share state only through PostgreSQL and Redis")


@pytest.fixture
def cluster(tmp_path):
    servers = [Server(tmp_path, PRESENCE_HEARTBEAT_SECONDS="1", PRESENCE_TTL_SECONDS="3") for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


async def next_frame(socket, type, timeout=5):
    async def find():
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == type:
                return frame

    return await asyncio.wait_for(find(), timeout)


def auth(tokens):
    return {"Authorization": f"Bearer {tokens['token']}"}


async def open_private(client, one, other):
    body = {"type": "private", "target_id": other["user_id"]}
    return (await client.post("/v1/conversations", json=body, headers=auth(one))).json()


async def test_bad_token_is_closed_with_4401_by_a_real_server(cluster):
    async with websockets.connect(f"{cluster[0].ws}?token=nonsense") as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd.code == 4401


async def test_message_sent_through_one_process_reaches_a_socket_on_the_other(cluster):
    a, b = cluster
    alice, bob = register(a.base, "alice"), register(a.base, "bob")
    async with httpx.AsyncClient(base_url=a.base, timeout=10) as client:
        conversation = await open_private(client, alice, bob)
        async with (
            websockets.connect(f"{b.ws}?token={bob['token']}") as bob_socket,
            websockets.connect(f"{a.ws}?token={alice['token']}") as alice_socket,
        ):
            await asyncio.sleep(0.3)  # both sockets live
            sent = await client.post(
                f"/v1/conversations/{conversation['conversation_id']}/messages",
                json={"content": "across processes", "temp_id": "x-1"},
                headers=auth(alice),
            )
            assert sent.status_code == 201
            received = await next_frame(bob_socket, "new_message", timeout=1)
            assert received["data"]["message_id"] == sent.json()["message_id"]
            own = await next_frame(alice_socket, "new_message", timeout=1)
            assert own["data"]["temp_id"] == "x-1"

            # A read receipt travels back from process B to the sender on A.
            read = {"conversation_id": conversation["conversation_id"], "message_id": sent.json()["message_id"]}
            await bob_socket.send(json.dumps({"type": "message_read", "data": read}))
            status = await next_frame(alice_socket, "message_status")
            assert status["data"]["status"] == "read"


async def test_presence_is_shared_and_heals_after_a_crash(cluster):
    a, b = cluster
    alice, bob = register(a.base, "alice"), register(a.base, "bob")
    async with httpx.AsyncClient(timeout=10) as client:
        await client.post(f"{a.base}/v1/contacts", json={"user_id": bob["user_id"]}, headers=auth(alice))
        async with websockets.connect(f"{a.ws}?token={alice['token']}") as watcher:
            await websockets.connect(f"{b.ws}?token={bob['token']}")  # dies with process B
            online = await next_frame(watcher, "contact_status")
            assert online["data"]["user_id"] == bob["user_id"] and online["data"]["status"] == "online"
            profile = (await client.get(f"{a.base}/v1/users/{bob['user_id']}", headers=auth(alice))).json()
            assert profile["status"] == "online"

            # A second device on the other process keeps bob online when the first goes away.
            bob_on_a = await websockets.connect(f"{a.ws}?token={bob['token']}")
            await asyncio.sleep(0.3)
            b.kill()
            await asyncio.sleep(4)  # past the TTL of the dead process's sockets
            profile = (await client.get(f"{a.base}/v1/users/{bob['user_id']}", headers=auth(alice))).json()
            assert profile["status"] == "online"

            await bob_on_a.close()
            offline = await next_frame(watcher, "contact_status", timeout=6)
            assert offline["data"]["status"] == "offline" and offline["data"]["last_online"]
            profile = (await client.get(f"{a.base}/v1/users/{bob['user_id']}", headers=auth(alice))).json()
            assert profile["status"] == "offline"


async def test_crashed_process_does_not_leave_users_online(cluster):
    a, b = cluster
    alice, bob = register(a.base, "alice"), register(a.base, "bob")
    async with httpx.AsyncClient(timeout=10) as client:
        await client.post(f"{a.base}/v1/contacts", json={"user_id": bob["user_id"]}, headers=auth(alice))
        async with websockets.connect(f"{a.ws}?token={alice['token']}") as watcher:
            await websockets.connect(f"{b.ws}?token={bob['token']}")
            assert (await next_frame(watcher, "contact_status"))["data"]["status"] == "online"
            b.kill()
            offline = await next_frame(watcher, "contact_status", timeout=8)
            assert offline["data"]["status"] == "offline"


async def test_resume_on_the_other_process_after_missing_messages(cluster):
    a, b = cluster
    alice, bob = register(a.base, "alice"), register(a.base, "bob")
    async with httpx.AsyncClient(base_url=a.base, timeout=10) as client:
        conversation = await open_private(client, alice, bob)
        path = f"/v1/conversations/{conversation['conversation_id']}/messages"
        async with websockets.connect(f"{b.ws}?token={bob['token']}") as socket:
            await asyncio.sleep(0.2)
            await client.post(path, json={"content": "seen"}, headers=auth(alice))
            last_seen = (await next_frame(socket, "new_message"))["id"]
        for n in range(5):
            await client.post(path, json={"content": f"missed {n}"}, headers=auth(alice))
        async with websockets.connect(f"{a.ws}?token={bob['token']}&since={last_seen}") as socket:
            replay = [await next_frame(socket, "new_message") for _ in range(5)]
            assert [f["data"]["content"] for f in replay] == [f"missed {n}" for n in range(5)]
            assert [int(f["id"]) for f in replay] == list(range(int(last_seen) + 1, int(last_seen) + 6))
