"""Call events and the ICE candidate relay on the WebSocket (contract 9), through the real ASGI app."""

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db.models import F

from calls import services
from calls.models import Call
from imserver.api import PayloadTooLarge
from realtime.bus import hub
from tests.calls.test_api import ANSWER, OFFER, call_in
from tests.realtime.test_consumer import TIMEOUT, expect_close, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_hub():
    yield
    hub.connections.clear()


start = database_sync_to_async(
    lambda caller, callee: services.call_start(caller=caller, target_user_id=callee.pk, type="video", offer_sdp=OFFER)
)
accept = database_sync_to_async(
    lambda callee, call: services.call_accept(user=callee, call_id=call.pk, answer_sdp=ANSWER)
)


@database_sync_to_async
def end_after(user, call, seconds):
    Call.objects.filter(pk=call.pk).update(connected_at=F("connected_at") - timedelta(seconds=seconds))
    return services.call_end(user=user, call_id=call.pk)


async def receive(socket):
    return await socket.receive_json_from(timeout=TIMEOUT)


async def assert_alive(socket):
    """Nothing else queued for this socket, and it still answers."""
    assert await socket.receive_nothing(timeout=0.2)
    await socket.send_json_to({"type": "ping", "data": {"timestamp": 1}})
    assert (await receive(socket))["type"] == "pong"


async def close_all(*sockets):
    for socket in sockets:
        await socket.disconnect()


class TestEvents:
    async def test_incoming_call_rings_every_device_of_the_callee(self, user, other_user):
        caller, phone, tablet = await open_socket(user), await open_socket(other_user), await open_socket(other_user)
        call = await start(user, other_user)
        for device in (phone, tablet):
            frame = await receive(device)
            assert frame["type"] == "incoming_call" and frame["id"]
            assert frame["data"] == {
                "call_id": f"call{call.pk}",
                "caller_id": str(user.pk),
                "caller_name": "Alice",
                "type": "video",
                "offer_sdp": OFFER,
                "created_at": frame["data"]["created_at"],
            }
        await assert_alive(caller)
        await close_all(caller, phone, tablet)

    async def test_call_status_reaches_both_parties_on_every_change(self, user, other_user):
        call = await start(user, other_user)
        caller, phone, tablet = await open_socket(user), await open_socket(other_user), await open_socket(other_user)
        await accept(other_user, call)
        connected = await receive(caller)
        assert connected["type"] == "call_status" and connected["id"]
        assert connected["data"]["status"] == "connected" and connected["data"]["answer_sdp"] == ANSWER
        assert "duration" not in connected["data"]
        for device in (phone, tablet):  # the callee's other device stops ringing
            frame = await receive(device)
            assert frame["type"] == "call_status" and frame["data"]["status"] == "connected"
            assert "answer_sdp" not in frame["data"]

        await end_after(user, call, 30)
        for socket in (caller, phone, tablet):
            ended = await receive(socket)
            assert ended["type"] == "call_status"
            assert ended["data"] == {
                "call_id": f"call{call.pk}",
                "status": "ended",
                "duration": 30,
                "updated_at": ended["data"]["updated_at"],
            }
            record = await receive(socket)
            assert record["type"] == "new_message" and record["data"]["call"]["status"] == "ended"
            assert int(record["id"]) == int(ended["id"]) + 1
            await assert_alive(socket)
        await close_all(caller, phone, tablet)


class TestIceCandidate:
    CANDIDATE = "candidate:1 1 UDP 2013266431 192.168.1.100 54572 typ host"

    async def test_relayed_to_every_device_of_the_other_party(self, user, other_user):
        caller, phone, tablet = await open_socket(user), await open_socket(other_user), await open_socket(other_user)
        call = await start(user, other_user)
        for socket in (phone, tablet):
            assert (await receive(socket))["type"] == "incoming_call"
        sent = {"call_id": f"call{call.pk}", "candidate": self.CANDIDATE, "sdp_mid": "0", "sdp_mline_index": 0}
        await caller.send_json_to({"type": "ice_candidate", "data": sent})
        for device in (phone, tablet):
            # Ephemeral: no id.
            assert await receive(device) == {"type": "ice_candidate", "data": {**sent, "from_user_id": str(user.pk)}}
        await assert_alive(caller)

        # And back, once connected; the optional fields are relayed only when sent.
        await accept(other_user, call)
        for socket in (caller, phone, tablet):
            assert (await receive(socket))["type"] == "call_status"
        await tablet.send_json_to({"type": "ice_candidate", "data": {"call_id": f"call{call.pk}", "candidate": ""}})
        relayed = await receive(caller)
        assert relayed == {
            "type": "ice_candidate",
            "data": {"call_id": f"call{call.pk}", "candidate": "", "from_user_id": str(other_user.pk)},
        }
        await assert_alive(phone)
        await close_all(caller, phone, tablet)

    @pytest.mark.parametrize(
        "data, code",
        [
            ({}, 400),
            ({"call_id": "CALL", "candidate": "c"}, 400),
            ({"call_id": "call1"}, 400),
            ({"call_id": "call1", "candidate": 5}, 400),
            ({"call_id": "call1", "candidate": "c", "sdp_mline_index": "zero"}, 400),
            ({"call_id": "call1", "candidate": "c", "sdp_mline_index": -1}, 400),
            ({"call_id": "call1", "candidate": "c", "sdp_mid": 0}, 400),
            ({"call_id": "call999999", "candidate": "c"}, 400),
        ],
    )
    async def test_malformed_or_unknown_is_an_error(self, user, other_user, data, code):
        caller, callee = await open_socket(user), await open_socket(other_user)
        call = await start(user, other_user)
        assert (await receive(callee))["type"] == "incoming_call"
        if data.get("call_id") == "call1":
            data = {**data, "call_id": f"call{call.pk}"}
        await caller.send_json_to({"type": "ice_candidate", "data": data})
        error = await receive(caller)
        assert error["type"] == "error" and error["data"]["ref_type"] == "ice_candidate"
        assert error["data"]["code"] == code and error["data"]["message"]
        await assert_alive(caller)
        await assert_alive(callee)  # nothing relayed
        await close_all(caller, callee)

    async def test_from_a_stranger_is_an_error(self, user, other_user, stranger):
        intruder, callee = await open_socket(stranger), await open_socket(other_user)
        call = await start(user, other_user)
        assert (await receive(callee))["type"] == "incoming_call"
        await intruder.send_json_to({"type": "ice_candidate", "data": {"call_id": f"call{call.pk}", "candidate": "c"}})
        error = await receive(intruder)
        # Contract 7: "not a participant" is a 400 error frame (REST would say 404).
        assert error["type"] == "error" and error["data"]["code"] == 400
        await assert_alive(callee)
        await close_all(intruder, callee)

    @pytest.mark.parametrize("status", ["ended", "rejected", "cancelled", "missed"])
    async def test_for_a_finished_call_is_an_error(self, user, other_user, status):
        call = await database_sync_to_async(call_in)(status, user, other_user)
        caller = await open_socket(user)
        await caller.send_json_to({"type": "ice_candidate", "data": {"call_id": f"call{call.pk}", "candidate": "c"}})
        error = await receive(caller)
        assert error["type"] == "error" and error["data"]["code"] == 400
        assert status in error["data"]["message"]
        await assert_alive(caller)
        await caller.disconnect()

    async def test_a_frame_over_64_kib_closes_the_socket(self, user, other_user):
        # The frame limit of contract 7 comes first: a candidate that big never reaches the relay.
        call = await start(user, other_user)
        caller = await open_socket(user)
        big = {"call_id": f"call{call.pk}", "candidate": "a" * (64 * 1024 + 1)}
        await caller.send_to(text_data=json.dumps({"type": "ice_candidate", "data": big}))
        await expect_close(caller, 1009)

    async def test_the_relay_refuses_a_candidate_over_64_kib(self, user, other_user):
        call = await start(user, other_user)
        with pytest.raises(PayloadTooLarge):
            await database_sync_to_async(services.call_ice_candidate_relay)(
                user=user, call_id=call.pk, candidate="a" * (64 * 1024 + 1)
            )

    async def test_relaying_is_rate_limited_per_call_and_sender(self, user, other_user, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ice": "3/minute"}
        caller, callee = await open_socket(user), await open_socket(other_user)
        call = await start(user, other_user)
        assert (await receive(callee))["type"] == "incoming_call"
        frame = {"type": "ice_candidate", "data": {"call_id": f"call{call.pk}", "candidate": self.CANDIDATE}}
        for _ in range(3):
            await caller.send_json_to(frame)
            assert (await receive(callee))["type"] == "ice_candidate"
        await caller.send_json_to(frame)
        error = await receive(caller)
        assert error["type"] == "error" and error["data"]["code"] == 429
        await assert_alive(callee)  # the fourth was not relayed
        await callee.send_json_to({**frame, "data": {**frame["data"]}})  # the other party has its own budget
        assert (await receive(caller))["type"] == "ice_candidate"
        await close_all(caller, callee)
