"""Delete for me and clear (contract 15): hidden for the caller only, on all their devices;
gone from their history, last_message, unread counts and search; others see no change."""

import pytest

from chat.models import MessageHidden
from chat.services import message_hide
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import history
from tests.conftest import client_for, events_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user, other_user):
    return private_chat(user, other_user)


def hide(client, message):
    return client.delete(f"/v1/conversations/c{message.conversation_id}/messages/m{message.pk}")


def clear(client, conversation):
    return client.post(f"/v1/conversations/c{conversation.pk}/clear")


def ids(client, conversation):
    return [m["message_id"] for m in history(client, conversation).json()["messages"]]


def item(client, conversation):
    return client.get(f"/v1/conversations/c{conversation.pk}").json()


class TestDeleteForMe:
    def test_only_the_caller_loses_it(self, user, other_user, conversation):
        first, second = send(other_user, conversation, "one"), send(other_user, conversation, "two")

        assert hide(client_for(user), first).status_code == 204

        assert ids(client_for(user), conversation) == [f"m{second.pk}"]
        assert ids(client_for(other_user), conversation) == [f"m{second.pk}", f"m{first.pk}"]

    def test_own_devices_are_told_and_nobody_else(self, user, other_user, conversation):
        message = send(other_user, conversation, "one")
        hide(client_for(user), message)
        (event,) = events_of(user, "messages_hidden")
        assert event["data"] == {"conversation_id": f"c{conversation.pk}", "message_ids": [f"m{message.pk}"]}
        assert events_of(other_user, "messages_hidden") == []
        synced = client_for(user).get("/v1/sync?since=0").json()["events"]
        assert synced[-1]["type"] == "messages_hidden"  # durable

    def test_twice_is_one_hide(self, user, other_user, conversation):
        message = send(other_user, conversation, "one")
        assert hide(client_for(user), message).status_code == 204
        assert hide(client_for(user), message).status_code == 204
        assert MessageHidden.objects.count() == 1 and len(events_of(user, "messages_hidden")) == 1

    def test_last_message_becomes_the_newest_visible_one(self, user, other_user, conversation):
        first, second = send(user, conversation, "one"), send(other_user, conversation, "two")
        hide(client_for(user), second)
        assert item(client_for(user), conversation)["last_message"]["message_id"] == f"m{first.pk}"
        assert item(client_for(other_user), conversation)["last_message"]["message_id"] == f"m{second.pk}"
        hide(client_for(user), first)
        assert item(client_for(user), conversation)["last_message"] is None
        listed = client_for(user).get("/v1/conversations").json()["conversations"]
        assert listed[0]["last_message"] is None

    def test_unread_counts_leave_it_out(self, user, other_user, conversation):
        message = send(other_user, conversation, "one")
        send(other_user, conversation, "two")
        hide(client_for(user), message)
        assert item(client_for(user), conversation)["unread_count"] == 1
        unread = client_for(user).get("/v1/user/me/unread").json()
        assert (unread["unread_messages"], unread["unread_conversations"]) == (1, 1)

    def test_search_leaves_it_out_for_the_caller_only(self, user, other_user, conversation):
        message = send(other_user, conversation, "secret plans")
        hide(client_for(user), message)
        assert client_for(user).get("/v1/messages/search?q=plans").json()["total"] == 0
        assert client_for(other_user).get("/v1/messages/search?q=plans").json()["total"] == 1

    def test_an_unknown_message_or_a_stranger_is_404(self, user, other_user, stranger, conversation):
        message = send(other_user, conversation, "one")
        assert_error(hide(client_for(stranger), message), 404)
        elsewhere = send(stranger, private_chat(stranger, make_user("carol")), "x")
        assert_error(client_for(user).delete(f"/v1/conversations/c{conversation.pk}/messages/m{elsewhere.pk}"), 404)
        assert not MessageHidden.objects.exists()


class TestClear:
    def test_hides_everything_up_to_now_for_the_caller(self, user, other_user, conversation):
        send(user, conversation, "one")
        newest = send(other_user, conversation, "two")

        assert clear(client_for(user), conversation).status_code == 204

        assert ids(client_for(user), conversation) == []
        shown = item(client_for(user), conversation)
        assert (shown["last_message"], shown["unread_count"]) == (None, 0)
        assert client_for(user).get("/v1/user/me/unread").json()["unread_messages"] == 0
        assert client_for(user).get("/v1/messages/search?q=two").json()["total"] == 0
        (event,) = events_of(user, "conversation_cleared")
        assert event["data"] == {"conversation_id": f"c{conversation.pk}", "cleared_before_message_id": f"m{newest.pk}"}
        # Others see no change.
        assert len(ids(client_for(other_user), conversation)) == 2
        assert client_for(other_user).get("/v1/messages/search?q=two").json()["total"] == 1
        assert events_of(other_user, "conversation_cleared") == []

    def test_new_messages_show_again(self, user, other_user, conversation):
        send(other_user, conversation, "old")
        clear(client_for(user), conversation)
        fresh = send(other_user, conversation, "fresh")
        assert ids(client_for(user), conversation) == [f"m{fresh.pk}"]
        shown = item(client_for(user), conversation)
        assert (shown["last_message"]["message_id"], shown["unread_count"]) == (f"m{fresh.pk}", 1)
        assert client_for(user).get("/v1/messages/search?q=fresh").json()["total"] == 1
        assert client_for(user).get("/v1/messages/search?q=old").json()["total"] == 0

    def test_unhiding_the_conversation_does_not_bring_them_back(self, user, other_user, conversation):
        send(other_user, conversation, "old")
        client = client_for(user)
        client.patch(f"/v1/conversations/c{conversation.pk}/settings", {"hidden": True}, format="json")
        clear(client, conversation)
        client.patch(f"/v1/conversations/c{conversation.pk}/settings", {"hidden": False}, format="json")
        assert ids(client, conversation) == []

    def test_nothing_new_to_clear_sends_nothing(self, user, other_user, conversation):
        assert clear(client_for(user), conversation).status_code == 204  # empty
        send(other_user, conversation, "one")
        clear(client_for(user), conversation)
        clear(client_for(user), conversation)
        assert len(events_of(user, "conversation_cleared")) == 1

    def test_a_stranger_is_404(self, stranger, conversation):
        assert_error(clear(client_for(stranger), conversation), 404)


@pytest.mark.parametrize("rows", [1, 30])
def test_list_and_history_cost_no_query_per_hidden_row(user, rows, django_assert_max_num_queries):
    """Each conversation's last message hidden: the list still costs a constant number of queries."""
    for n in range(rows):
        conversation = private_chat(user, make_user(f"peer{n}"))
        send(user, conversation, "kept")
        hidden = send(user, conversation, "hidden")
        message_hide(user=user, conversation_id=conversation.pk, message_id=hidden.pk)
    client = client_for(user)
    with django_assert_max_num_queries(4):  # auth, the list, the shown last messages, the device
        listed = client.get("/v1/conversations?limit=100").json()["conversations"]
    assert [c["last_message"]["content"] for c in listed] == ["kept"] * rows
    with django_assert_max_num_queries(4):
        assert len(history(client, conversation).json()["messages"]) == 1
