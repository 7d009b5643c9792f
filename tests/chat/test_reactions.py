"""Reactions (contract 18): one emoji grapheme, PUT idempotent, DELETE, at most 20 distinct emoji
a message (409), `reacted` per caller on every message, reaction_update to the members (durable,
never pushed), none on removed messages (409)."""

import threading
from urllib.parse import quote

import pytest
from django.db import connection

from chat.models import Membership, Reaction
from chat.reactions import MAX_EMOJI
from chat.services import message_remove
from realtime.models import EventOutbox
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import history
from tests.conftest import client_for, events_of, group_of, is_postgres, make_user, private_chat, send
from tests.push.conftest import fake_fcm  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

# Single emoji of every kind the contract names (ZWJ sequences, skin tones, flags), and a keycap.
SINGLE = ["👍", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "👩🏽‍💻", "🇫🇷", "❤️", "#️⃣"]
NOT_ONE = ["a", "ok", "👍👍", "👍 ", ":)", "1", "%20", "🇫"]


@pytest.fixture
def conversation(user, other_user):
    return private_chat(user, other_user)


@pytest.fixture
def message(other_user, conversation):
    return send(other_user, conversation, "react to me")


def url(message, emoji):
    return f"/v1/conversations/c{message.conversation_id}/messages/m{message.pk}/reactions/{quote(emoji)}"


def react(user, message, emoji="👍"):
    return client_for(user).put(url(message, emoji))


def unreact(user, message, emoji="👍"):
    return client_for(user).delete(url(message, emoji))


@pytest.mark.parametrize("emoji", SINGLE)
def test_one_emoji_of_every_kind_is_taken(user, message, emoji):
    response = react(user, message, emoji)
    assert response.status_code == 200, response.content
    assert response.json() == {"reactions": [{"emoji": emoji, "count": 1, "reacted": True}]}


@pytest.mark.parametrize("value", NOT_ONE)
def test_text_or_two_emoji_is_a_400(user, message, value):
    assert_error(react(user, message, value), 400)
    assert not Reaction.objects.exists()


def test_the_reaction_count_column_follows_the_rows(user, other_user, message, conversation):
    """Message.reaction_count, which lets history pages skip chat_reaction for messages without
    reactions: in step with adding, taking back, an erased reactor and a removal."""
    from chat.reactions import reactions_erase

    def stored():
        message.refresh_from_db()
        return message.reaction_count, Reaction.objects.filter(message=message).count()

    react(user, message, "👍")
    react(user, message, "👍")
    react(other_user, message, "👍")
    react(other_user, message, "🎉")
    assert stored() == (3, 3)
    unreact(user, message, "👍")
    assert stored() == (2, 2)
    reactions_erase(other_user)
    assert stored() == (0, 0)
    assert history(client_for(user), conversation).json()["messages"][0]["reactions"] == []
    react(user, message, "👍")
    assert history(client_for(user), conversation).json()["messages"][0]["reactions"][0]["count"] == 1
    message_remove(message=message)
    assert stored() == (0, 0)


def test_put_is_idempotent_and_delete_takes_it_back(user, other_user, message):
    react(user, message)
    assert react(user, message).json() == {"reactions": [{"emoji": "👍", "count": 1, "reacted": True}]}
    assert react(other_user, message).json() == {"reactions": [{"emoji": "👍", "count": 2, "reacted": True}]}
    assert unreact(user, message).json() == {"reactions": [{"emoji": "👍", "count": 1, "reacted": False}]}
    assert unreact(user, message).json() == {"reactions": [{"emoji": "👍", "count": 1, "reacted": False}]}
    assert len(events_of(other_user, "reaction_update")) == 3  # add, add, remove: no event for a no-op


def test_messages_carry_reactions_with_the_callers_own(user, other_user, message, conversation):
    react(user, message, "👍")
    react(other_user, message, "🎉")
    react(other_user, message, "👍")
    mine = history(client_for(user), conversation).json()["messages"][0]["reactions"]
    assert mine == [{"emoji": "👍", "count": 2, "reacted": True}, {"emoji": "🎉", "count": 1, "reacted": False}]
    found = client_for(user).get("/v1/messages/search", {"q": "react"}).json()["messages"][0]["reactions"]
    assert found == mine


def test_members_get_reaction_update_never_pushed(user, other_user, message, settings):
    react(user, message)
    unreact(user, message)
    frames = [e["data"] for e in events_of(other_user, "reaction_update")]
    assert frames == [
        {
            "conversation_id": f"c{message.conversation_id}",
            "message_id": f"m{message.pk}",
            "emoji": "👍",
            "user_id": str(user.pk),
            "action": action,
            "count": count,
        }
        for action, count in (("add", 1), ("remove", 0))
    ]
    assert [e["data"]["action"] for e in events_of(user, "reaction_update")] == ["add", "remove"]


def test_reaction_update_has_no_outbox_row_even_with_push_on(user, message, fake_fcm):  # noqa: F811
    react(user, message)
    assert not EventOutbox.objects.exists()


def test_at_most_20_distinct_emoji(user, other_user, message):
    emoji = [
        "😀",
        "😁",
        "😂",
        "🤣",
        "😃",
        "😄",
        "😅",
        "😆",
        "😉",
        "😊",
        "😋",
        "😎",
        "😍",
        "😘",
        "🥰",
        "😗",
        "😙",
        "🥲",
        "😚",
        "🙂",
    ]
    assert len(emoji) == MAX_EMOJI
    for e in emoji:
        assert react(user, message, e).status_code == 200
    assert_error(react(user, message, "🙃"), 409)
    assert react(other_user, message, "😀").status_code == 200  # an emoji already there is not a new one


def test_a_removed_message_takes_no_reactions(user, message):
    react(user, message)
    message_remove(message=message)
    assert_error(react(user, message, "🎉"), 409)
    assert_error(unreact(user, message), 409)


def test_a_stranger_or_another_conversations_message_is_a_404(user, other_user, stranger, message):
    assert_error(react(stranger, message), 404)
    assert_error(react(stranger, message, "not an emoji"), 404)  # a stranger learns nothing from the input
    group = group_of(user, other_user).conversation
    response = client_for(user).put(f"/v1/conversations/c{group.pk}/messages/m{message.pk}/reactions/{quote('👍')}")
    assert_error(response, 404)


@pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://")
@pytest.mark.django_db(transaction=True)
def test_the_cap_holds_under_concurrent_reactions(user, other_user):
    conversation = group_of(user, other_user).conversation
    message = send(other_user, conversation, "busy")
    people = [make_user(f"fan{i}") for i in range(MAX_EMOJI + 5)]
    Membership.objects.bulk_create([Membership(conversation=conversation, user=p) for p in people])
    emoji = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰"]
    emoji += ["😗", "😙", "🥲", "😚", "🙂", "🙃", "🫠", "😇", "🤩", "🤓"]
    clients = [client_for(p) for p in people]
    statuses = []

    def one(client, e):
        statuses.append(client.put(url(message, e)).status_code)
        connection.close()

    threads = [threading.Thread(target=one, args=pair) for pair in zip(clients, emoji, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * MAX_EMOJI + [409] * 5
    assert Reaction.objects.values("emoji").distinct().count() == MAX_EMOJI


@pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://")
@pytest.mark.django_db(transaction=True)
def test_reactions_racing_a_removal_never_outlive_it(user, other_user):
    """Members react while the message is removed: each reaction either came first and went with
    the removal, or came after and was refused (409); none is left on the tombstone."""
    conversation = group_of(user, other_user).conversation
    message = send(other_user, conversation, "going")
    people = [make_user(f"fan{i}") for i in range(8)]
    Membership.objects.bulk_create([Membership(conversation=conversation, user=p) for p in people])
    clients = [client_for(p) for p in people]
    statuses = []
    start = threading.Barrier(len(people) + 1)

    def one(client):
        start.wait()
        statuses.append(client.put(url(message, "👍")).status_code)
        connection.close()

    def remove():
        start.wait()
        message_remove(message=message)
        connection.close()

    threads = [threading.Thread(target=one, args=(client,)) for client in clients]
    threads.append(threading.Thread(target=remove))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 409} and len(statuses) == len(people)
    assert not Reaction.objects.filter(message=message).exists()
