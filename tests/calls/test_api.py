"""Calls over REST (contract 9): signaling, the state machine, the events each party is sent,
the ring timeout, call records in the conversation, history."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from calls import services
from calls.models import Call
from chat.models import Conversation, Message
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for, events_of, make_user

pytestmark = pytest.mark.django_db

OFFER = "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
ANSWER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
KIB_64 = 64 * 1024


def post_call(client, target, type="video", offer_sdp=OFFER):
    return client.post("/v1/calls", {"target_id": str(target.pk), "type": type, "offer_sdp": offer_sdp}, format="json")


def act(client, call, action, **body):
    return client.post(f"/v1/calls/call{call.pk}/{action}", body or None, format="json")


def start(caller, callee, type="video"):
    return services.call_start(caller=caller, target_user_id=callee.pk, type=type, offer_sdp=OFFER)


def expire(call):
    """Makes a ringing call's deadline pass and runs the expiry service."""
    Call.objects.filter(pk=call.pk).update(ring_deadline=timezone.now() - timedelta(seconds=1))
    return services.calls_expire()


def call_in(status, caller, callee):
    """A call between caller and callee brought to `status` through the services."""
    call = start(caller, callee)
    if status in ("connected", "ended"):
        services.call_accept(user=callee, call_id=call.pk, answer_sdp=ANSWER)
    if status == "ended":
        services.call_end(user=caller, call_id=call.pk)
    if status == "rejected":
        services.call_reject(user=callee, call_id=call.pk)
    if status == "cancelled":
        services.call_end(user=caller, call_id=call.pk)
    if status == "missed":
        expire(call)
    call.refresh_from_db()
    assert call.status == status
    return call


class TestStart:
    def test_rings_the_callee(self, user, other_user, user_api):
        response = post_call(user_api, other_user)
        assert response.status_code == 201
        body = response.json()
        call = Call.objects.get()
        assert body["call_id"] == f"call{call.pk}"
        assert body["target_id"] == str(other_user.pk) and body["caller_id"] == str(user.pk)
        assert body["type"] == "video" and body["status"] == "ringing" and body["duration"] is None
        assert body["created_at"].endswith("Z")
        assert call.offer_sdp == OFFER  # CRLF line ends kept
        assert call.ring_deadline - call.created_at == timedelta(seconds=45)
        [incoming] = events_of(other_user)
        assert incoming["type"] == "incoming_call"
        assert incoming["data"] == {
            "call_id": body["call_id"],
            "caller_id": str(user.pk),
            "caller_name": "Alice",
            "type": "video",
            "offer_sdp": OFFER,
            "created_at": body["created_at"],
        }
        assert events_of(user) == []

    def test_opens_the_private_conversation_of_the_pair(self, user, other_user, user_api):
        body = post_call(user_api, other_user, type="audio").json()
        conversation = Conversation.objects.get()
        assert body["conversation_id"] == f"c{conversation.pk}" and body["type"] == "audio"
        assert conversation.private_key == f"{user.pk}:{other_user.pk}"

    def test_ring_timeout_is_configurable(self, other_user, user_api, settings):
        settings.CALL_RING_TIMEOUT = 10
        post_call(user_api, other_user)
        call = Call.objects.get()
        assert call.ring_deadline - call.created_at == timedelta(seconds=10)

    def test_calling_yourself_is_400(self, user, user_api):
        assert "target_id" in assert_error(post_call(user_api, user), 400)["fields"]
        assert not Call.objects.exists()

    @pytest.mark.parametrize("target_id", ["999999", "abc", "call1"])
    def test_unknown_callee_is_404(self, user_api, target_id):
        body = {"target_id": target_id, "type": "audio", "offer_sdp": OFFER}
        assert_error(user_api.post("/v1/calls", body, format="json"), 404)

    def test_banned_callee_is_404(self, other_user, user_api):
        User.objects.filter(pk=other_user.pk).update(is_banned=True)
        assert_error(post_call(user_api, other_user), 404)

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "video", "offer_sdp": OFFER},
            {"target_id": "2", "type": "screen", "offer_sdp": OFFER},
            {"target_id": "2", "type": "video"},
            {"target_id": "2", "type": "video", "offer_sdp": ""},
            {"target_id": "2", "type": "video", "offer_sdp": 12},
            {"target_id": 2, "type": "video", "offer_sdp": OFFER},
        ],
    )
    def test_invalid_body_is_400(self, other_user, user_api, body):
        assert_error(user_api.post("/v1/calls", body, format="json"), 400)

    def test_offer_over_64_kib_is_413(self, other_user, user_api):
        assert_error(post_call(user_api, other_user, offer_sdp="a" * (KIB_64 + 1)), 413)
        assert_error(post_call(user_api, other_user, offer_sdp="é" * (KIB_64 // 2 + 1)), 413)  # bytes, not chars
        assert post_call(user_api, other_user, offer_sdp="a" * KIB_64).status_code == 201

    @pytest.mark.parametrize("busy_status", ["ringing", "connected"])
    def test_either_side_in_a_live_call_is_409(self, user, other_user, stranger, busy_status):
        carol = make_user("carol")
        call_in(busy_status, stranger, other_user)  # bob is busy with mallory
        assert "another call" in assert_error(post_call(client_for(user), other_user), 409)["details"]
        assert "already in a call" in assert_error(post_call(client_for(stranger), carol), 409)["details"]
        assert "already in a call" in assert_error(post_call(client_for(other_user), user), 409)["details"]
        # Calling back the one you are ringing is busy too.
        assert_error(post_call(client_for(other_user), stranger), 409)
        assert Call.objects.count() == 1

    @pytest.mark.parametrize("finished", ["ended", "rejected", "cancelled", "missed"])
    def test_a_finished_call_frees_both_sides(self, user, other_user, finished):
        call_in(finished, user, other_user)
        assert post_call(client_for(other_user), user).status_code == 201

    def test_offline_callee_still_rings(self, user_api, other_user):
        assert not other_user.is_online
        assert post_call(user_api, other_user).json()["status"] == "ringing"

    def test_throttled_with_the_calls_scope(self, other_user, user_api, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "calls": "2/minute"}
        assert post_call(user_api, other_user).status_code == 201
        assert post_call(user_api, other_user).status_code == 409
        response = post_call(user_api, other_user)
        assert_error(response, 429)
        assert int(response["Retry-After"]) >= 1
        # Only starting a call counts against "calls".
        assert user_api.get("/v1/calls").status_code == 200


# Whoever acts, on a call in each status: the expected HTTP status and the call's new status.
# Written out rather than derived from calls.services.TRANSITIONS, which it checks.
LIVE = ["ringing", "connected"]
FINISHED = ["ended", "rejected", "cancelled", "missed"]
EXPECTED = {
    ("callee", "accept"): {"ringing": (200, "connected")},
    ("callee", "reject"): {"ringing": (200, "rejected")},
    ("caller", "end"): {"ringing": (200, "cancelled"), "connected": (200, "ended")},
    ("callee", "end"): {"ringing": (200, "rejected"), "connected": (200, "ended")},
}


def expected(actor, action, status):
    if actor == "stranger":
        return 404, status
    if (actor, action) not in EXPECTED:
        return 403, status  # the caller accepting or rejecting, whatever the call's status
    return EXPECTED[(actor, action)].get(status, (409, status))


class TestTransitions:
    @pytest.mark.parametrize("status", LIVE + FINISHED)
    @pytest.mark.parametrize("action", ["accept", "reject", "end"])
    @pytest.mark.parametrize("actor", ["caller", "callee", "stranger"])
    def test_matrix(self, user, other_user, stranger, actor, action, status):
        call = call_in(status, user, other_user)
        client = client_for({"caller": user, "callee": other_user, "stranger": stranger}[actor])
        events_before = {u: len(events_of(u)) for u in (user, other_user)}
        code, new_status = expected(actor, action, status)
        response = act(client, call, action, **({"answer_sdp": ANSWER} if action == "accept" else {}))
        call.refresh_from_db()
        assert call.status == new_status
        if code != 200:
            assert_error(response, code)
            assert {u: len(events_of(u)) for u in (user, other_user)} == events_before
            return
        body = response.json()
        assert body["call_id"] == f"call{call.pk}" and body["status"] == new_status
        assert body["updated_at"].endswith("Z")
        for party in (user, other_user):
            status_event = events_of(party, "call_status")[-1]["data"]
            assert status_event["status"] == new_status and status_event["updated_at"] == body["updated_at"]

    def test_accept_gives_the_caller_the_answer(self, user, other_user):
        call = start(user, other_user)
        response = act(client_for(other_user), call, "accept", answer_sdp=ANSWER)
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "connected" and body["connected_at"] == body["updated_at"]
        assert body["duration"] is None
        [to_caller] = events_of(user, "call_status")
        assert to_caller["data"] == {
            "call_id": f"call{call.pk}",
            "status": "connected",
            "answer_sdp": ANSWER,
            "updated_at": body["updated_at"],
        }
        [to_callee] = events_of(other_user, "call_status")
        assert to_callee["data"] == {
            "call_id": f"call{call.pk}",
            "status": "connected",
            "updated_at": body["updated_at"],
        }
        assert Call.objects.get().answer_sdp == ANSWER

    def test_accept_validates_the_answer(self, user, other_user):
        call = start(user, other_user)
        callee = client_for(other_user)
        assert_error(act(callee, call, "accept"), 400)
        assert_error(act(callee, call, "accept", answer_sdp=["v=0"]), 400)
        assert_error(act(callee, call, "accept", answer_sdp="a" * (KIB_64 + 1)), 413)
        assert Call.objects.get().status == "ringing"

    def test_a_stranger_gets_404_whatever_the_answer(self, user, other_user, stranger):
        call = start(user, other_user)
        intruder = client_for(stranger)
        assert_error(act(intruder, call, "accept"), 404)
        assert_error(act(intruder, call, "accept", answer_sdp="a" * (KIB_64 + 1)), 404)
        assert Call.objects.get().status == "ringing"

    def test_end_gives_the_duration_from_connection(self, user, other_user):
        call = call_in("connected", user, other_user)
        Call.objects.filter(pk=call.pk).update(connected_at=F("connected_at") - timedelta(seconds=125))
        body = act(client_for(other_user), call, "end").json()
        assert body["status"] == "ended" and body["duration"] == 125 and body["ended_at"] == body["updated_at"]
        for party in (user, other_user):
            assert events_of(party, "call_status")[-1]["data"] == {
                "call_id": f"call{call.pk}",
                "status": "ended",
                "duration": 125,
                "updated_at": body["updated_at"],
            }

    @pytest.mark.parametrize("status", ["rejected", "cancelled", "missed"])
    def test_never_connected_has_duration_zero(self, user, other_user, status):
        call = call_in(status, user, other_user)
        assert client_for(user).get("/v1/calls").json()["calls"][0]["duration"] == 0
        assert events_of(other_user, "call_status")[-1]["data"]["duration"] == 0
        assert call.duration == 0

    @pytest.mark.parametrize("path", ["/v1/calls/12/end", "/v1/calls/callx/end", "/v1/calls/call999999/end"])
    def test_malformed_or_unknown_call_is_404(self, user_api, path):
        assert_error(user_api.post(path), 404)

    def test_anonymous_is_401(self, api, user, other_user):
        call = start(user, other_user)
        assert_error(api.get("/v1/calls"), 401)
        assert_error(api.get("/v1/calls/ice-servers"), 401)
        assert_error(api.post("/v1/calls", {"target_id": "1"}, format="json"), 401)
        for action in ("accept", "reject", "end"):
            assert_error(act(api, call, action), 401)


class TestRingTimeout:
    def test_an_expired_call_is_missed_exactly_once(self, user, other_user, stranger):
        call = start(user, other_user)
        assert services.calls_expire() == 0  # not due yet
        assert expire(call) == 1
        call.refresh_from_db()
        assert call.status == "missed" and call.ended_at == call.updated_at and call.duration == 0
        for party in (user, other_user):
            [missed] = events_of(party, "call_status")
            assert missed["data"] == {
                "call_id": f"call{call.pk}",
                "status": "missed",
                "duration": 0,
                "updated_at": missed["data"]["updated_at"],
            }
        assert services.calls_expire() == 0
        assert len(events_of(user, "call_status")) == 1

    def test_only_ringing_calls_past_their_deadline(self, user, other_user, stranger):
        carol, dave = make_user("carol"), make_user("dave")
        talking = call_in("connected", user, other_user)
        due = start(stranger, carol)
        later = start(dave, make_user("erin"))
        Call.objects.filter(pk__in=[talking.pk, due.pk]).update(ring_deadline=timezone.now() - timedelta(seconds=1))
        assert services.calls_expire() == 1
        statuses = dict(Call.objects.values_list("pk", "status"))
        assert statuses == {talking.pk: "connected", due.pk: "missed", later.pk: "ringing"}

    def test_a_missed_call_cannot_be_answered(self, user, other_user):
        call = call_in("missed", user, other_user)
        assert_error(act(client_for(other_user), call, "accept", answer_sdp=ANSWER), 409)


class TestCallRecords:
    @pytest.mark.parametrize("status", FINISHED)
    def test_a_finished_call_leaves_one_record_from_the_caller(self, user, other_user, status):
        call = call_in(status, user, other_user)
        [record] = Message.objects.filter(type="call")
        assert record.sender_id == user.pk and record.conversation_id == call.conversation_id
        for party in (user, other_user):
            history = client_for(party).get(f"/v1/conversations/c{call.conversation_id}/messages").json()
            [message] = history["messages"]
            assert message["type"] == "call" and message["content"] == f"call{call.pk}"
            assert message["call"] == {"call_id": f"call{call.pk}", "type": "video", "status": status, "duration": 0}
            [event] = events_of(party, "new_message")
            assert event["data"]["call"] == message["call"]
            # The record follows the status change in each party's event order.
            assert events_of(party)[-2]["data"]["status"] == status
        item = client_for(other_user).get(f"/v1/conversations/c{call.conversation_id}").json()
        assert item["last_message"]["type"] == "call" and item["last_message"]["sender_id"] == str(user.pk)
        assert item["unread_count"] == 1  # a missed call is news to the callee

    def test_the_record_carries_the_duration(self, user, other_user):
        call = call_in("connected", user, other_user)
        Call.objects.filter(pk=call.pk).update(connected_at=F("connected_at") - timedelta(seconds=61))
        services.call_end(user=user, call_id=call.pk)
        assert Message.objects.get(type="call").call["duration"] == 61

    @pytest.mark.parametrize("status", LIVE)
    def test_no_record_while_live(self, user, other_user, status):
        call_in(status, user, other_user)
        assert not Message.objects.exists()


class TestHistory:
    def test_calls_made_and_received_newest_first(self, user, other_user, stranger, user_api):
        carol = make_user("carol")
        made = call_in("ended", user, other_user)
        received = call_in("missed", stranger, user)
        call_in("cancelled", other_user, carol)  # not alice's
        live = start(user, carol)
        body = user_api.get("/v1/calls").json()
        assert body["total"] == 3
        assert [c["call_id"] for c in body["calls"]] == [f"call{live.pk}", f"call{received.pk}", f"call{made.pk}"]
        incoming = body["calls"][1]
        assert incoming["caller_id"] == str(stranger.pk) and incoming["caller_name"] == "Mallory"
        assert incoming["target_id"] == str(user.pk) and incoming["target_name"] == "Alice"
        assert incoming["status"] == "missed" and incoming["duration"] == 0
        assert body["calls"][0]["status"] == "ringing" and body["calls"][0]["duration"] is None

    def test_limit_and_offset(self, user, other_user, user_api):
        calls = [call_in("cancelled", user, other_user) for _ in range(5)]
        body = user_api.get("/v1/calls", {"limit": 2, "offset": 1}).json()
        assert body["total"] == 5
        assert [c["call_id"] for c in body["calls"]] == [f"call{calls[3].pk}", f"call{calls[2].pk}"]
        assert user_api.get("/v1/calls", {"offset": 10}).json() == {"total": 5, "calls": []}
        assert_error(user_api.get("/v1/calls", {"limit": "x"}), 400)
        assert_error(user_api.get("/v1/calls", {"offset": -1}), 400)

    def test_empty(self, user_api):
        assert user_api.get("/v1/calls").json() == {"total": 0, "calls": []}

    @pytest.mark.parametrize("count", [1, 50])
    def test_query_count_does_not_grow_with_the_page(
        self, user, other_user, user_api, count, django_assert_max_num_queries
    ):
        for _ in range(count):
            call_in("cancelled", user, other_user)
        with django_assert_max_num_queries(3):  # auth, the page with both users and its total
            assert len(user_api.get("/v1/calls", {"limit": 100}).json()["calls"]) == count
