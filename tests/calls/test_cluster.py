"""Calls through real daphne processes: the ring timeout with several processes, and a real
WebRTC handshake (aiortc) signaled through the server."""

import asyncio
import json
import os
import re

import aioice.ice
import httpx
import pytest
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from tests.conftest import is_postgres
from tests.realtime.test_cluster import auth, next_frame
from tests.servers import Server, register

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cluster,
    pytest.mark.skipif(not is_postgres(), reason="server processes share the test database: set DATABASE_URL"),
]
RING_TIMEOUT = 2


async def frames_for(socket, seconds):
    """Every frame the socket receives within `seconds`."""
    frames = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        try:
            frames.append(json.loads(await asyncio.wait_for(socket.recv(), remaining)))
        except TimeoutError:
            break
    return frames


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="several processes need Redis (set REDIS_URL)")
async def test_ring_timeout_misses_each_call_once_with_several_processes(tmp_path):
    servers = [Server(tmp_path, CALL_RING_TIMEOUT_SECONDS=str(RING_TIMEOUT)) for _ in range(2)]
    try:
        users = [register(servers[0].base, name) for name in ("alice", "bob", "carol", "dave")]
        # Each pair's parties on different processes; every process runs the expiry job.
        sockets = [
            await websockets.connect(f"{servers[n % 2].ws}?token={user['token']}") for n, user in enumerate(users)
        ]
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(timeout=10) as client:
            for caller, callee, server in ((users[0], users[1], servers[0]), (users[2], users[3], servers[1])):
                body = {"target_id": callee["user_id"], "type": "audio", "offer_sdp": "v=0\r\n"}
                response = await client.post(f"{server.base}/v1/calls", json=body, headers=auth(caller))
                assert response.status_code == 201, response.text
        # The deadline, at most a second for the job, delivery; then long enough to see a duplicate.
        received = await asyncio.gather(*[frames_for(socket, RING_TIMEOUT + 4) for socket in sockets])
        for frames in received:
            statuses = [frame["data"]["status"] for frame in frames if frame["type"] == "call_status"]
            assert statuses == ["missed"]
            records = [frame["data"]["call"] for frame in frames if frame["type"] == "new_message"]
            assert [record["status"] for record in records] == ["missed"]
            ids = [int(frame["id"]) for frame in frames if "id" in frame]
            assert ids == sorted(set(ids))
        for socket in sockets:
            await socket.close()
    finally:
        for server in servers:
            server.stop()


def without_candidates(sdp):
    """(the SDP without its candidate lines, those candidates): they go by trickle ICE instead."""
    lines = sdp.splitlines()
    candidates = [line[len("a=") :] for line in lines if line.startswith("a=candidate:")]
    kept = [line for line in lines if not line.startswith("a=candidate:") and line != "a=end-of-candidates"]
    return "\r\n".join(kept) + "\r\n", candidates


async def trickle(socket, call_id, sdp, candidates):
    """Sends each candidate as an ice_candidate frame, then the end-of-candidates ("")."""
    mid = re.search(r"^a=mid:(\S+)", sdp, re.MULTILINE).group(1)
    for candidate in [*candidates, ""]:
        data = {"call_id": call_id, "candidate": candidate, "sdp_mid": mid, "sdp_mline_index": 0}
        await socket.send(json.dumps({"type": "ice_candidate", "data": data}))
    return len(candidates)


async def add_relayed_candidates(socket, peer, from_user_id):
    """Adds the candidates relayed to this socket until the end-of-candidates; returns how many."""
    added = 0
    while True:
        data = (await next_frame(socket, "ice_candidate"))["data"]
        assert data["from_user_id"] == from_user_id
        if not data["candidate"]:
            await peer.addIceCandidate(None)
            return added
        candidate = candidate_from_sdp(data["candidate"].split(":", 1)[1])
        candidate.sdpMid, candidate.sdpMLineIndex = data["sdp_mid"], data["sdp_mline_index"]
        await peer.addIceCandidate(candidate)
        added += 1


async def test_webrtc_peers_connect_through_the_server(tmp_path, monkeypatch):
    # Host candidates on loopback only: no STUN, no TURN, no network.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    server = Server(tmp_path)
    caller_peer, callee_peer = RTCPeerConnection(), RTCPeerConnection()
    try:
        alice, bob = register(server.base, "alice"), register(server.base, "bob")
        loop = asyncio.get_running_loop()
        channel = caller_peer.createDataChannel("chat")
        opened, received, answered = loop.create_future(), loop.create_future(), loop.create_future()
        channel.on("open", lambda: opened.set_result(True))
        channel.on("message", answered.set_result)

        @callee_peer.on("datachannel")
        def on_datachannel(remote):
            @remote.on("message")
            def on_message(message):
                received.set_result(message)
                remote.send(f"echo: {message}")

        async with (
            httpx.AsyncClient(base_url=server.base, timeout=10) as client,
            websockets.connect(f"{server.ws}?token={alice['token']}") as caller_socket,
            websockets.connect(f"{server.ws}?token={bob['token']}") as callee_socket,
        ):
            await asyncio.sleep(0.3)  # both sockets live

            await caller_peer.setLocalDescription(await caller_peer.createOffer())
            offer, caller_candidates = without_candidates(caller_peer.localDescription.sdp)
            body = {"target_id": bob["user_id"], "type": "audio", "offer_sdp": offer}
            started = await client.post("/v1/calls", json=body, headers=auth(alice))
            assert started.status_code == 201, started.text
            call_id = started.json()["call_id"]

            incoming = (await next_frame(callee_socket, "incoming_call"))["data"]
            assert incoming["call_id"] == call_id and incoming["caller_id"] == alice["user_id"]
            await callee_peer.setRemoteDescription(RTCSessionDescription(incoming["offer_sdp"], "offer"))
            await callee_peer.setLocalDescription(await callee_peer.createAnswer())
            answer, callee_candidates = without_candidates(callee_peer.localDescription.sdp)
            accepted = await client.post(f"/v1/calls/{call_id}/accept", json={"answer_sdp": answer}, headers=auth(bob))
            assert accepted.status_code == 200 and accepted.json()["status"] == "connected"

            status = (await next_frame(caller_socket, "call_status"))["data"]
            assert status["status"] == "connected"
            await caller_peer.setRemoteDescription(RTCSessionDescription(status["answer_sdp"], "answer"))

            # Both sides trickle their candidates through the server's ice_candidate relay.
            assert await trickle(caller_socket, call_id, offer, caller_candidates) >= 1
            assert await trickle(callee_socket, call_id, answer, callee_candidates) >= 1
            added = await asyncio.gather(
                add_relayed_candidates(callee_socket, callee_peer, alice["user_id"]),
                add_relayed_candidates(caller_socket, caller_peer, bob["user_id"]),
            )
            assert added == [len(caller_candidates), len(callee_candidates)]

            await asyncio.wait_for(opened, 10)
            channel.send("hello over WebRTC")
            assert await asyncio.wait_for(received, 10) == "hello over WebRTC"
            assert await asyncio.wait_for(answered, 10) == "echo: hello over WebRTC"

            ended = await client.post(f"/v1/calls/{call_id}/end", headers=auth(alice))
            assert ended.status_code == 200
            assert ended.json()["status"] == "ended" and isinstance(ended.json()["duration"], int)
            for socket in (caller_socket, callee_socket):
                final = (await next_frame(socket, "call_status"))["data"]
                assert final["status"] == "ended" and final["duration"] == ended.json()["duration"]
    finally:
        await caller_peer.close()
        await callee_peer.close()
        server.stop()
