"""Ordering, completeness and idempotency under concurrent senders, on real PostgreSQL."""

import random
import threading
import time

import orjson
import pytest
from django.db import connections

from chat import selectors
from chat.models import Message
from chat.services import conversation_mark_read, message_remove, message_send
from media.models import Media
from realtime import events
from realtime.models import UserEvent
from tests.conftest import client_for, group_of, is_postgres, make_user, private_chat
from tests.media.conftest import post_upload
from tests.media.files import image_bytes

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://"),
]

SENDERS = 8
PER_SENDER = 30


def in_thread(target):
    def run(*args, **kwargs):
        try:
            target(*args, **kwargs)
        finally:
            connections.close_all()

    return run


@pytest.fixture
def slow_commits(monkeypatch):
    """Random pauses between taking a seq and committing: late commits become likely, so a
    design that numbered messages before commit order would show gaps to the reader."""
    original = events.record

    def record(*args, **kwargs):
        time.sleep(random.uniform(0, 0.004))
        return original(*args, **kwargs)

    monkeypatch.setattr(events, "record", record)


def test_paging_with_after_sees_every_message_once_in_order(slow_commits):
    senders = [make_user(f"sender{i}") for i in range(SENDERS)]
    reader = make_user("reader")
    conversation = group_of(reader, *senders).conversation
    total = SENDERS * PER_SENDER
    errors, seen = [], []
    done = threading.Event()

    @in_thread
    def send_all(user):
        try:
            for n in range(PER_SENDER):
                message_send(sender=user, conversation_id=conversation.pk, content=f"{user.username}:{n}")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    @in_thread
    def read_all():
        last = None
        deadline = time.monotonic() + 60
        while len(seen) < total and time.monotonic() < deadline:
            # Looked at before the read: an empty page read after every send returned is final.
            senders_done = done.is_set()
            window = selectors.history_window(user=reader, conversation_id=conversation.pk, after=last)
            page, _ = selectors.message_page(window=window, limit=7)
            if page:
                seen.extend(reversed([m.pk for m in page]))  # pages come newest first
                last = page[0].pk
            elif senders_done:
                break

    threads = [threading.Thread(target=send_all, args=(user,)) for user in senders]
    reader_thread = threading.Thread(target=read_all)
    reader_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader_thread.join()

    assert errors == []
    stored = list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("pk", "seq"))
    assert [seq for _, seq in stored] == list(range(1, total + 1))  # gapless
    assert len(seen) == len(set(seen)) == total  # nothing missed, nothing twice
    assert seen == [pk for pk, _ in stored]  # in commit order

    # Every member's event log is gapless and lists the messages in the same order.
    for member in [reader, *senders]:
        rows = list(UserEvent.objects.filter(user=member).order_by("seq").select_related("payload"))
        assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
        new_messages = [
            orjson.loads(row.payload.data)["message_id"] for row in rows if row.payload.type == "new_message"
        ]
        assert new_messages == [f"m{pk}" for pk, _ in stored]


@in_thread
def _send_once(conversation, sender, temp_id, barrier, results, errors):
    try:
        barrier.wait()
        message, created = message_send(sender=sender, conversation_id=conversation.pk, content="once", temp_id=temp_id)
        results.append((message.pk, created))
    except Exception as exc:  # surfaced by the caller
        errors.append(exc)


def test_simultaneous_sends_with_one_temp_id_store_one_message():
    alice, bob = make_user("alice"), make_user("bob")
    conversation = group_of(alice, bob).conversation
    for attempt in range(10):
        barrier, results, errors = threading.Barrier(4), [], []
        args = (conversation, alice, f"t-{attempt}", barrier, results, errors)
        threads = [threading.Thread(target=_send_once, args=args) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len({pk for pk, _ in results}) == 1
        assert sorted(created for _, created in results) == [False, False, False, True]
    assert Message.objects.filter(conversation=conversation).count() == 10


def test_the_last_two_readers_of_a_group_message_at_once_send_its_read(monkeypatch):
    """Each reader, alone, sees the other's pointer from before its read: serialized, the
    second sees the first and sends the sender "read"."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    conversation = group_of(alice, bob, carol).conversation
    message, _ = message_send(sender=alice, conversation_id=conversation.pk, content="lunch?")
    original = selectors.lowest_pointers

    def slow(*args):  # the moment between moving one's pointer and looking at the others'
        time.sleep(0.2)
        return original(*args)

    monkeypatch.setattr(selectors, "lowest_pointers", slow)
    readers = [
        threading.Thread(
            target=in_thread(conversation_mark_read),
            kwargs={"user": reader, "conversation_id": conversation.pk, "message_id": message.pk},
        )
        for reader in (bob, carol)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(10)
    receipts = UserEvent.objects.filter(user=alice, payload__type="message_status")
    assert [orjson.loads(r.payload.data)["status"] for r in receipts] == ["read"]


def test_removing_the_last_message_with_an_upload_waits_for_a_send_carrying_it(monkeypatch):
    """A send of an upload already attached elsewhere, not yet committed, while a moderator removes
    the one committed message carrying it: the upload must stay for the new message (else one of
    the two commits fails on the foreign key)."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    photo = post_upload(client_for(alice), image_bytes("JPEG"), "image").json()["media_id"]
    first = message_send(sender=alice, conversation_id=private_chat(alice, bob).pk, content=photo, type="image")[0]
    elsewhere = private_chat(alice, carol)
    holding = threading.Event()
    original = events.record

    def slow_record(*recorded):  # the send, holding its locks a while before commit
        if threading.current_thread().name == "sender":
            holding.set()
            time.sleep(0.3)
        return original(*recorded)

    monkeypatch.setattr(events, "record", slow_record)
    errors = []

    def send_again():
        try:
            message_send(sender=alice, conversation_id=elsewhere.pk, content=photo, type="image")
        except Exception as exc:
            errors.append(exc)

    sender = threading.Thread(target=in_thread(send_again), name="sender")
    sender.start()
    assert holding.wait(5)
    message_remove(message=first)
    sender.join(10)
    assert errors == []
    kept = Message.objects.get(conversation=elsewhere)
    assert Media.objects.filter(pk=kept.media_id).exists()
