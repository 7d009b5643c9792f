"""At most WS_MAX_PER_USER open WebSockets per user across all processes (contract 23): one more is
closed with 4429, a closed socket frees its slot, a crashed process's sockets free theirs."""

import asyncio
import os
import time

import pytest
import websockets

from presence.registry import RedisPresence, presence
from tests.realtime.test_consumer import expect_close, open_socket
from tests.servers import Server, cluster_marks, register


@pytest.mark.django_db(transaction=True)
class TestOneProcess:
    """On the backend the run has: in memory without REDIS_URL, Redis with it."""

    async def test_the_socket_past_the_cap_is_closed_4429_and_a_closed_one_frees_its_slot(
        self, user, other_user, settings
    ):
        settings.WS_MAX_PER_USER = 2
        first, second = await open_socket(user), await open_socket(user)
        refused = await open_socket(user, ready=False)
        await expect_close(refused, 4429)
        others = await open_socket(other_user)  # the cap is per user

        await first.disconnect()
        third = await open_socket(user)  # the slot is free again
        await expect_close(await open_socket(user, ready=False), 4429)
        for socket in (second, third, others):
            await socket.disconnect()

    async def test_a_refused_socket_gets_no_replay_and_holds_no_slot(self, user, settings):
        settings.WS_MAX_PER_USER = 1
        socket = await open_socket(user)
        refused = await open_socket(user, query="since=0", ready=False)
        await expect_close(refused, 4429)
        await socket.disconnect()
        await (await open_socket(user)).disconnect()
        assert not presence.local  # every socket counted out


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the registry across processes is Redis")
async def test_sockets_of_a_process_that_stopped_beating_free_their_slots_after_the_ttl(settings):
    """What a crashed process leaves behind: registered sockets whose deadline nobody renews."""
    settings.WS_MAX_PER_USER = 2
    registry = RedisPresence()
    user_id = 990001
    await registry.client.delete(f"presence:{user_id}", f"presence:devices:{user_id}")
    assert await registry.admit(user_id, "a", None, 2)
    assert await registry.admit(user_id, "b", None, 2)
    assert not await registry.admit(user_id, "c", None, 2)

    past = time.time() - 1  # the TTL passed without a heartbeat
    await registry.client.zadd("presence:deadlines", {f"{user_id}:a": past, f"{user_id}:b": past})
    assert await registry.admit(user_id, "c", None, 2)
    assert await registry.client.smembers(f"presence:{user_id}") == {b"c"}
    await registry.unregister(user_id, "c")


class TestAcrossProcesses:
    pytestmark = cluster_marks("the cap holds across processes only through Redis")

    @pytest.fixture
    def cluster(self, tmp_path):
        env = {"WS_MAX_PER_USER": "3", "PRESENCE_HEARTBEAT_SECONDS": "1", "PRESENCE_TTL_SECONDS": "3"}
        servers = [Server(tmp_path, **env) for _ in range(2)]
        yield servers
        for server in servers:
            server.stop()

    async def closed_with(self, url):
        async with websockets.connect(url) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 5)
        return closed.value.rcvd.code

    async def live(self, url):
        socket = await websockets.connect(url)
        await socket.send('{"type": "ping", "data": {"timestamp": 1}}')
        assert "pong" in await asyncio.wait_for(socket.recv(), 5)  # counted in by now
        return socket

    async def test_the_cap_counts_sockets_on_every_process(self, cluster):
        a, b = cluster
        alice = register(a.base, "alice")
        on_a, on_b = f"{a.ws}?token={alice['token']}", f"{b.ws}?token={alice['token']}"
        sockets = [await self.live(on_a), await self.live(on_a), await self.live(on_b)]
        assert await self.closed_with(on_b) == 4429
        assert await self.closed_with(on_a) == 4429

        await sockets.pop(0).close()
        await asyncio.sleep(0.3)
        sockets.append(await self.live(on_b))  # the slot freed on A is taken on B
        assert await self.closed_with(on_b) == 4429
        for socket in sockets:
            await socket.close()

    async def test_a_crashed_process_frees_its_sockets_slots(self, cluster):
        a, b = cluster
        alice = register(a.base, "alice")
        on_a, on_b = f"{a.ws}?token={alice['token']}", f"{b.ws}?token={alice['token']}"
        held = [await self.live(on_b) for _ in range(3)]
        assert await self.closed_with(on_a) == 4429
        b.kill()
        await asyncio.sleep(4)  # past the TTL of the dead process's sockets
        sockets = [await self.live(on_a) for _ in range(3)]
        assert await self.closed_with(on_a) == 4429
        for socket in sockets + held:
            await socket.close()
