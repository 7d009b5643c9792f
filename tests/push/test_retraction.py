"""A removal or a recall retracts the notification its message caused (contracts 12, 15)."""

import pytest

from chat.services import message_recall, message_remove
from tests.conftest import private_chat, send
from tests.push.test_pipeline import push_round, register

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_recall_after_the_push_sends_a_silent_retraction(fake_fcm, user, other_user):
    register(other_user, "phone")
    conversation = private_chat(user, other_user)
    message = send(user, conversation, "oops, wrong chat")
    push_round()
    fake_fcm.received.clear()

    message_recall(user=user, conversation_id=conversation.pk, message_id=message.pk)
    push_round()

    (push,) = fake_fcm.received
    assert push["token"] == "phone"
    assert push["android"] == {"priority": "NORMAL"}  # silent
    data = push["data"]
    assert (data["type"], data["message_id"], data["conversation_id"]) == (
        "message_status",
        f"m{message.pk}",
        f"c{conversation.pk}",
    )
    assert "title" not in data and "body" not in data


def test_a_message_removed_before_its_push_left_is_never_pushed(fake_fcm, user, other_user):
    register(other_user, "phone")
    message = send(user, private_chat(user, other_user), "the secret text")
    message_remove(message=message)  # before any push round

    push_round()

    assert [push["data"]["type"] for push in fake_fcm.received] == ["message_status"]
    assert "the secret text" not in str(fake_fcm.received)
