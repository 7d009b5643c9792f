"""Events leave only after their transaction commits, and never for a rolled-back one."""

import pytest
from django.db import transaction

from chat.services import message_send
from realtime import bus
from realtime.models import EventPayload, UserEvent
from tests.conftest import events_of, private_chat

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(bus, "publish", lambda messages: sent.extend(messages))
    return sent


def test_published_after_commit_only(user, other_user, published):
    conversation = private_chat(user, other_user)
    with transaction.atomic():
        message_send(sender=user, conversation_id=conversation.pk, content="hi")
        assert published == []  # not while the transaction is open
    assert [m["t"] for m in published] == ["new_message"]
    assert sorted(uid for uid, _ in published[0]["r"]) == sorted([user.pk, other_user.pk])


def test_rolled_back_transaction_never_produces_an_event(user, other_user, published):
    conversation = private_chat(user, other_user)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        message_send(sender=user, conversation_id=conversation.pk, content="never")
        raise Abort
    assert published == []
    assert not EventPayload.objects.exists() and not UserEvent.objects.exists()
    assert events_of(other_user) == []


def test_publish_failure_never_rolls_back_the_write(user, other_user, monkeypatch):
    conversation = private_chat(user, other_user)

    def broken_redis(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(bus, "_redis_publisher", broken_redis)
    monkeypatch.setattr(bus.hub, "dispatch_threadsafe", broken_redis)
    message, created = message_send(sender=user, conversation_id=conversation.pk, content="kept")
    assert created
    assert events_of(other_user, "new_message")[0]["data"]["content"] == "kept"
