"""Delivered receipts (contract 19): the message_delivered frame, cumulative delivered pointers,
status sent -> delivered -> read never back, and the pacing of message_status "delivered"."""

import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from chat import receipts
from chat.models import Membership
from chat.services import conversation_mark_delivered, conversation_mark_read, delivered_flush
from contacts.services import privacy_settings_update
from groups.services import group_invite
from tests.conftest import client_for, events_of, group_of, is_postgres, make_user, private_chat, send

WINDOW_MS = 150


@pytest.fixture(autouse=True)
def _fresh_pacing(monkeypatch):
    # Ids repeat across tests on SQLite: no window or held receipt may carry over.
    monkeypatch.setattr(receipts, "WINDOW_MS", WINDOW_MS)
    pacing = receipts.pacing()
    if isinstance(pacing, receipts._RedisPacing):
        for key in pacing.client.scan_iter("delivered:*"):
            pacing.client.delete(key)
    receipts._pacing_for.cache_clear()
    yield
    receipts._pacing_for.cache_clear()


def delivered(user, conversation, message):
    return conversation_mark_delivered(user=user, conversation_id=conversation.pk, message_id=message.pk)


def read(user, conversation, message):
    return conversation_mark_read(user=user, conversation_id=conversation.pk, message_id=message.pk)


def statuses(viewer, conversation):
    """{message id: status} of the history as the viewer gets it."""
    page = client_for(viewer).get(f"/v1/conversations/c{conversation.pk}/messages").json()["messages"]
    return {m["message_id"]: m["status"] for m in page}


def status_events(user):
    return [(e["data"]["message_id"], e["data"]["status"]) for e in events_of(user, "message_status")]


def window_passes():
    time.sleep(WINDOW_MS / 1000 + 0.02)


@pytest.mark.django_db
class TestStatus:
    def test_private_goes_sent_delivered_read_and_the_sender_is_told(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation)
        assert statuses(user, conversation) == {f"m{message.pk}": "sent"}
        delivered(other_user, conversation, message)
        assert statuses(user, conversation) == {f"m{message.pk}": "delivered"}
        assert status_events(user) == [(f"m{message.pk}", "delivered")]
        read(other_user, conversation, message)
        assert statuses(user, conversation) == {f"m{message.pk}": "read"}
        assert status_events(user)[-1] == (f"m{message.pk}", "read")
        window_passes()
        delivered(other_user, conversation, message)  # read already: nothing moves, nothing sent
        assert delivered_flush() == 0
        assert statuses(user, conversation) == {f"m{message.pk}": "read"}
        assert status_events(user) == [(f"m{message.pk}", "delivered"), (f"m{message.pk}", "read")]

    def test_the_pointer_is_cumulative_and_never_moves_back(self, user, other_user):
        conversation = private_chat(user, other_user)
        first, second = send(user, conversation, "one"), send(user, conversation, "two")
        delivered(other_user, conversation, second)
        assert statuses(user, conversation) == {f"m{first.pk}": "delivered", f"m{second.pk}": "delivered"}
        delivered(other_user, conversation, first)
        assert Membership.objects.get(conversation=conversation, user=other_user).delivered_seq == second.seq
        # one event: the newest covers the earlier
        assert status_events(user) == [(f"m{second.pk}", "delivered")]

    def test_a_group_message_is_delivered_once_every_other_member_has_it(self, user, other_user):
        carol = make_user("carol")
        conversation = group_of(user, other_user, carol).conversation
        message = send(user, conversation)
        delivered(other_user, conversation, message)
        assert statuses(user, conversation)[f"m{message.pk}"] == "sent" and status_events(user) == []
        delivered(carol, conversation, message)
        assert statuses(user, conversation)[f"m{message.pk}"] == "delivered"
        assert status_events(user) == [(f"m{message.pk}", "delivered")]
        newcomer = make_user("newcomer")
        group_invite(user=user, group_id=conversation.group.pk, user_ids=[str(newcomer.pk)])
        assert statuses(user, conversation)[f"m{message.pk}"] == "delivered"  # a joiner does not undo it

    def test_a_read_delivers_too_also_without_read_receipts(self, user, other_user):
        privacy_settings_update(user=other_user, send_read_receipts=False)
        conversation = private_chat(user, other_user)
        message = send(user, conversation)
        read(other_user, conversation, message)
        assert statuses(user, conversation) == {f"m{message.pk}": "delivered"}
        assert status_events(user) == [(f"m{message.pk}", "delivered")]

    def test_search_results_carry_the_status(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "findable words")
        delivered(other_user, conversation, message)
        found = client_for(user).get("/v1/messages/search", {"q": "findable"}).json()["messages"]
        assert [m["status"] for m in found] == ["delivered"]

    def test_a_stranger_or_a_foreign_message_is_refused(self, user, other_user, stranger, api):
        from rest_framework.exceptions import NotFound, ValidationError

        conversation = private_chat(user, other_user)
        message = send(user, conversation)
        with pytest.raises(NotFound):
            delivered(stranger, conversation, message)
        elsewhere = send(user, private_chat(user, stranger))
        with pytest.raises(ValidationError):
            delivered(other_user, conversation, elsewhere)


@pytest.mark.django_db
class TestPacing:
    def test_one_per_sender_and_conversation_per_window_the_latest_flushed_at_its_end(self, user, other_user):
        conversation = private_chat(user, other_user)
        messages = [send(user, conversation, f"m{n}") for n in range(3)]
        delivered(other_user, conversation, messages[0])
        delivered(other_user, conversation, messages[1])
        delivered(other_user, conversation, messages[2])
        assert status_events(user) == [(f"m{messages[0].pk}", "delivered")]  # the others wait
        assert delivered_flush() == 0  # the window has not ended
        window_passes()
        assert delivered_flush() == 1
        assert status_events(user)[-1] == (f"m{messages[2].pk}", "delivered")  # only the latest
        later = send(user, conversation, "later")
        delivered(other_user, conversation, later)  # the flush opened a new window
        assert len(status_events(user)) == 2
        window_passes()
        assert delivered_flush() == 1 and status_events(user)[-1] == (f"m{later.pk}", "delivered")
        window_passes()
        assert delivered_flush() == 0  # nothing held

    def test_a_held_receipt_that_read_covered_is_dropped(self, user, other_user):
        conversation = private_chat(user, other_user)
        first, second = send(user, conversation, "one"), send(user, conversation, "two")
        delivered(other_user, conversation, first)
        delivered(other_user, conversation, second)  # held
        read(other_user, conversation, second)
        window_passes()
        assert delivered_flush() == 0
        assert status_events(user) == [
            (f"m{first.pk}", "delivered"),
            (f"m{first.pk}", "read"),
            (f"m{second.pk}", "read"),
        ]

    def test_a_flush_that_died_after_claiming_is_done_by_the_next_one(self, user, other_user):
        conversation = private_chat(user, other_user)
        first, second = send(user, conversation, "one"), send(user, conversation, "two")
        delivered(other_user, conversation, first)
        delivered(other_user, conversation, second)  # held
        window_passes()
        assert receipts.pacing().claim_due() == [(user.pk, conversation.pk, second.pk)]  # then the process died
        assert delivered_flush() == 0  # its lease (a window) still runs
        window_passes()
        assert delivered_flush() == 1
        assert status_events(user)[-1] == (f"m{second.pk}", "delivered")

    def test_senders_are_paced_apart(self, user, other_user):
        carol = make_user("carol")
        conversation = group_of(user, other_user, carol).conversation
        mine, theirs = send(user, conversation), send(other_user, conversation)
        delivered(carol, conversation, theirs)
        delivered(other_user, conversation, mine)
        assert status_events(user) == [(f"m{mine.pk}", "delivered")]
        delivered(user, conversation, theirs)
        assert status_events(other_user) == [(f"m{theirs.pk}", "delivered")]


@pytest.mark.django_db(transaction=True)
class TestFrame:
    async def test_message_delivered_frame_tells_the_sender(self, user, other_user):
        from tests.realtime.test_consumer import TIMEOUT, next_of_type, open_socket

        conversation = await database_sync_to_async(private_chat)(user, other_user)
        message = await database_sync_to_async(send)(user, conversation)
        sender_socket, recipient_socket = await open_socket(user), await open_socket(other_user)
        frame = {"conversation_id": f"c{conversation.pk}", "message_id": f"m{message.pk}"}
        await recipient_socket.send_json_to({"type": "message_delivered", "data": frame})
        status = await next_of_type(sender_socket, "message_status")
        assert status["data"]["status"] == "delivered" and status["data"]["message_id"] == f"m{message.pk}"
        assert "id" in status  # durable: replays with since, appears in /v1/sync
        for bad in ({}, {"conversation_id": "c1", "message_id": "x"}, {**frame, "conversation_id": "c999999"}):
            await recipient_socket.send_json_to({"type": "message_delivered", "data": bad})
            error = await recipient_socket.receive_json_from(timeout=TIMEOUT)
            assert error["type"] == "error" and error["data"]["ref_type"] == "message_delivered"
            assert error["data"]["code"] == 400
        await sender_socket.disconnect()
        await recipient_socket.disconnect()


def in_thread(target, errors):
    def run():
        try:
            target()
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://")
def test_a_read_racing_a_delivered_receipt_never_leaves_delivered_after_read(user, other_user):
    rounds = 15
    carol = make_user("carol")
    conversation = group_of(user, other_user, carol).conversation
    for _ in range(rounds):
        message = send(user, conversation)
        delivered(carol, conversation, message)
        errors = []
        threads = [
            in_thread(lambda m=message: delivered(other_user, conversation, m), errors),
            in_thread(lambda m=message: read(other_user, conversation, m), errors),
            in_thread(lambda m=message: read(carol, conversation, m), errors),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        window_passes()
        delivered_flush()
        assert statuses(user, conversation)[f"m{message.pk}"] == "read"
        told = [status for message_id, status in status_events(user) if message_id == f"m{message.pk}"]
        assert told[-1] == "read" and "delivered" not in told[told.index("read") :]
