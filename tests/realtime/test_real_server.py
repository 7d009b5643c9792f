"""The protocol's edges as a real daphne process (make run's server) enforces them."""

import json

import pytest
import websockets

from tests.servers import Server, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path)
    yield server
    server.stop()


async def test_a_frame_over_64_kib_closes_the_socket_with_1009(server):
    tokens = register(server.base, "alice")
    async with websockets.connect(f"{server.ws}?token={tokens['token']}", max_size=None) as socket:
        await socket.send(json.dumps({"type": "ping", "data": {"timestamp": 1}}))
        assert json.loads(await socket.recv())["type"] == "pong"
        await socket.send(json.dumps({"type": "ping", "data": {"timestamp": 2, "pad": "x" * 70_000}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await socket.recv()
    assert closed.value.rcvd.code == 1009
