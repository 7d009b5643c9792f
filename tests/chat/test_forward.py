"""Forwarding (contract 18): one copy per source and target, sent by the forwarder, with
forwarded_from; membership of sources and targets; media reused and openable by the target's
members; copies untouched by a recall of the source; temp_id idempotency; blocks apply."""

import pytest

from chat.models import Message
from chat.services import message_remove
from media.models import Media
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import history, post_message
from tests.conftest import client_for, events_of, group_of, is_postgres, make_user, private_chat, send
from tests.media.conftest import post_upload
from tests.media.files import image_bytes

pytestmark = pytest.mark.django_db


def forward(user, messages, conversations, **extra):
    body = {
        "message_ids": [f"m{m.pk}" if isinstance(m, Message) else m for m in messages],
        "conversation_ids": [f"c{c.pk}" if hasattr(c, "pk") else c for c in conversations],
        **extra,
    }
    return client_for(user).post("/v1/messages/forward", body, format="json")


@pytest.fixture
def source(user, other_user):
    return private_chat(user, other_user)


@pytest.fixture
def target(user, stranger):
    return group_of(user, stranger).conversation


def test_one_copy_per_source_and_target_sent_by_the_forwarder(user, other_user, stranger, source, target):
    first, second = send(other_user, source, "one"), send(other_user, source, "two")
    elsewhere = private_chat(user, stranger)
    response = forward(user, [first, second], [target, elsewhere])
    assert response.status_code == 201
    copies = response.json()["messages"]
    assert [(c["conversation_id"], c["content"]) for c in copies] == [
        (f"c{target.pk}", "one"),
        (f"c{target.pk}", "two"),
        (f"c{elsewhere.pk}", "one"),
        (f"c{elsewhere.pk}", "two"),
    ]
    assert {c["sender_id"] for c in copies} == {str(user.pk)}
    assert copies[0]["forwarded_from"]["sender_name"] == "Bob"
    assert copies[0]["forwarded_from"]["created_at"].startswith(first.created_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert post_message(client_for(user), target, content="mine").json()["forwarded_from"] is None
    received = [e["data"]["content"] for e in events_of(stranger, "new_message")]
    assert received[-5:-1] == ["one", "two", "one", "two"]


def test_a_copy_of_a_copy_names_the_first_original(user, other_user, stranger, source, target):
    original = send(other_user, source, "rumour")
    copy = forward(user, [original], [target]).json()["messages"][0]
    again = forward(stranger, [copy["message_id"]], [private_chat(stranger, user)]).json()["messages"][0]
    assert again["forwarded_from"]["sender_name"] == "Bob"


@pytest.mark.parametrize(
    "count_sources, count_targets", [(0, 1), (1, 0), (21, 1), (1, 10)], ids=["no source", "no target", "21", "10"]
)
def test_none_or_too_many_is_a_400(user, other_user, source, count_sources, count_targets):
    message = send(other_user, source)
    groups = [group_of(user, other_user, name=f"g{i}").conversation for i in range(count_targets)]
    assert_error(forward(user, [message] * count_sources, groups), 400)


def test_a_removed_source_is_a_400(user, other_user, source, target):
    message = send(other_user, source)
    message_remove(message=message)
    assert_error(forward(user, [message], [target]), 400)
    assert not Message.objects.filter(conversation=target).exists()


def test_a_source_or_target_the_forwarder_is_not_in_is_a_404(user, other_user, stranger, source, target):
    message = send(other_user, source)
    outsider_chat = private_chat(make_user("otto"), other_user)
    assert_error(forward(stranger, [message], [target]), 404)  # not in the source's conversation
    assert_error(forward(user, [message], [outsider_chat]), 404)  # not in the target
    assert_error(forward(user, ["m99999999"], [target]), 404)
    assert_error(forward(user, [message], ["c99999999", "nonsense"]), 404)
    assert not Message.objects.filter(conversation__in=[target, outsider_chat]).exists()


def test_media_is_reused_and_every_target_member_can_open_it(user, other_user, stranger, source, target):
    media_id = post_upload(client_for(other_user), image_bytes("PNG"), "image").json()["media_id"]
    original = post_message(client_for(other_user), source, type="image", content=media_id, caption="look").json()
    uploads = Media.objects.count()
    copy = forward(user, [original["message_id"]], [target]).json()["messages"][0]
    assert Media.objects.count() == uploads
    assert (copy["type"], copy["caption"], copy["media"]["media_id"]) == ("image", "look", media_id)
    seen = history(client_for(stranger), target).json()["messages"][0]["media"]
    assert client_for(stranger).get(seen["url"]).status_code == 200


def test_a_recall_of_the_source_leaves_the_copies_and_their_upload(user, other_user, stranger, source, target):
    media_id = post_upload(client_for(other_user), image_bytes("PNG"), "image").json()["media_id"]
    original = post_message(client_for(other_user), source, type="image", content=media_id).json()
    forward(user, [original["message_id"]], [target])
    message_remove(message=Message.objects.get(pk=int(original["message_id"][1:])))
    copy = history(client_for(stranger), target).json()["messages"][0]
    assert copy["status"] == "sent" and copy["media"]["media_id"] == media_id
    assert client_for(stranger).get(copy["media"]["url"]).status_code == 200


def test_idempotent_on_temp_id(user, other_user, stranger, source, target):
    messages = [send(other_user, source, "a"), send(other_user, source, "b")]
    first = forward(user, messages, [target], temp_id="fw-1")
    assert first.status_code == 201
    again = forward(user, messages, [target], temp_id="fw-1")
    assert again.status_code == 200
    assert [m["message_id"] for m in again.json()["messages"]] == [m["message_id"] for m in first.json()["messages"]]
    assert [m["temp_id"] for m in again.json()["messages"]] == ["fw-1/0", "fw-1/1"]
    assert Message.objects.filter(conversation=target, sender=user).count() == 2
    assert len([e for e in events_of(stranger, "new_message") if e["data"]["content"] in "ab"]) == 2


def test_a_block_refuses_a_private_target(user, other_user, stranger, source):
    message = send(other_user, source)
    blocked_chat = private_chat(user, stranger)
    client_for(stranger).put(f"/v1/blocks/{user.pk}")
    assert_error(forward(user, [message], [blocked_chat]), 403)
    assert not Message.objects.filter(conversation=blocked_chat).exists()


def test_each_copy_costs_only_its_send(user, other_user, stranger, source, target):
    """A copy is the send's lock, its check (which reads the members, the new_message's audience)
    and its insert (with the index row and the conversation's advance; on SQLite those are three
    statements): no query more per copy, such as the members read again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sources = [send(other_user, source, f"n{n}") for n in range(6)]
    counts = []
    for batch in (sources[:2], sources[2:]):
        with CaptureQueriesContext(connection) as queries:
            assert forward(user, batch, [target]).status_code == 201
        counts.append(len(queries))
    assert (counts[1] - counts[0]) / 2 == (3 if is_postgres() else 5)
    assert [e["data"]["content"] for e in events_of(stranger, "new_message")] == [f"n{n}" for n in range(6)]
