"""Recall (contract 15): the sender within the window; in a group the owner anyone's and an
admin a plain member's, at any time; a tombstone with removed_by, message_status to members."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from chat.models import Membership, Mention, Message, Reaction
from chat.services import message_remove
from media.models import Media
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import post_message
from tests.conftest import client_for, events_of, group_of, is_postgres, make_user, private_chat, send
from tests.media.conftest import post_upload
from tests.media.files import image_bytes

pytestmark = pytest.mark.django_db


def recall(client, message):
    return client.post(f"/v1/conversations/c{message.conversation_id}/messages/m{message.pk}/recall")


def age(message, seconds):
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


@pytest.fixture
def team(user, other_user):
    """alice owns the group, bob is an admin, carol and dave are plain members."""
    carol, dave = make_user("carol"), make_user("dave")
    group = group_of(user, other_user, carol, dave)
    Membership.objects.filter(conversation=group.conversation, user=other_user).update(role="admin")
    return group.conversation, carol, dave


class TestBySender:
    def test_within_the_window(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "wrong chat")

        response = recall(client_for(user), message)

        assert response.status_code == 200
        body = response.json()
        assert (body["message_id"], body["status"], body["content"], body["removed_by"]) == (
            f"m{message.pk}",
            "removed",
            "",
            "sender",
        )
        assert body["caption"] is None and body["media"] is None
        for member in (user, other_user):
            (status,) = events_of(member, "message_status")
            assert status["data"] == {
                "message_id": f"m{message.pk}",
                "conversation_id": f"c{conversation.pk}",
                "status": "removed",
                "removed_by": "sender",
                "updated_at": body["updated_at"],
            }
        shown = client_for(other_user).get(f"/v1/conversations/c{conversation.pk}/messages").json()["messages"][0]
        assert (shown["status"], shown["content"], shown["removed_by"]) == ("removed", "", "sender")

    def test_after_the_window_is_403(self, user, other_user, settings):
        settings.MESSAGE_RECALL_WINDOW_SECONDS = 120
        message = send(user, private_chat(user, other_user), "too late")
        age(message, 121)
        assert_error(recall(client_for(user), message), 403)
        assert Message.objects.get(pk=message.pk).status == "sent"
        age(message, 110)
        assert recall(client_for(user), message).status_code == 200

    def test_the_other_participant_of_a_private_chat_is_403(self, user, other_user):
        message = send(user, private_chat(user, other_user), "mine")
        assert_error(recall(client_for(other_user), message), 403)

    def test_already_removed_is_409(self, user, other_user):
        message = send(user, private_chat(user, other_user), "gone")
        assert recall(client_for(user), message).status_code == 200
        assert_error(recall(client_for(user), message), 409)
        message_remove(message=send(user, private_chat(user, other_user), "by a moderator"))
        assert_error(recall(client_for(user), Message.objects.latest("pk")), 409)
        assert len(events_of(other_user, "message_status")) == 2

    def test_an_upload_no_other_message_uses_is_deleted(self, user, other_user, django_capture_on_commit_callbacks):
        photo = post_upload(client_for(user), image_bytes("JPEG"), "image").json()
        message = send(user, private_chat(user, other_user), photo["media_id"], type="image", caption="oops")
        with django_capture_on_commit_callbacks(execute=True):
            assert recall(client_for(user), message).status_code == 200
        assert not Media.objects.exists()


class TestInGroups:
    def test_the_owner_recalls_anyones_at_any_time(self, user, other_user, team):
        conversation, carol, _ = team
        for sender in (carol, other_user):
            message = send(sender, conversation, "old news")
            age(message, 86400 * 30)
            body = recall(client_for(user), message).json()
            assert (body["status"], body["removed_by"]) == ("removed", "admin")
        own = send(user, conversation, "my own")
        assert recall(client_for(user), own).json()["removed_by"] == "sender"

    def test_an_admin_recalls_a_plain_members_at_any_time(self, other_user, team):
        conversation, carol, _ = team
        message = send(carol, conversation, "spam")
        age(message, 86400)
        assert recall(client_for(other_user), message).json()["removed_by"] == "admin"
        events = events_of(carol, "message_status")
        assert events[-1]["data"]["removed_by"] == "admin"

    def test_an_admin_recalls_a_former_members(self, other_user, team):
        conversation, carol, _ = team
        message = send(carol, conversation, "bye")
        Membership.objects.filter(conversation=conversation, user=carol).delete()
        assert recall(client_for(other_user), message).status_code == 200

    def test_an_admin_cannot_recall_the_owners_or_another_admins(self, user, other_user, team):
        conversation, carol, _ = team
        Membership.objects.filter(conversation=conversation, user=carol).update(role="admin")
        for sender in (user, carol):
            assert_error(recall(client_for(other_user), send(sender, conversation, "x")), 403)

    def test_an_admin_recalls_their_own_only_within_the_window(self, other_user, team):
        conversation, _, _ = team
        message = send(other_user, conversation, "mine")
        age(message, 3600)
        assert_error(recall(client_for(other_user), message), 403)

    def test_a_plain_member_cannot_recall_others(self, user, team):
        conversation, carol, dave = team
        for sender in (user, dave):
            assert_error(recall(client_for(carol), send(sender, conversation, "x")), 403)

    def test_a_stranger_or_another_conversation_is_404(self, user, stranger, team):
        conversation, _, _ = team
        message = send(user, conversation, "x")
        assert_error(recall(client_for(stranger), message), 404)
        elsewhere = private_chat(user, stranger)
        url = f"/v1/conversations/c{elsewhere.pk}/messages/m{message.pk}/recall"
        assert_error(client_for(user).post(url), 404)


def test_the_moderator_removal_is_the_same_tombstone(user, other_user):
    message = send(user, private_chat(user, other_user), "x")
    message_remove(message=message)
    assert events_of(other_user, "message_status")[0]["data"]["removed_by"] == "moderator"
    assert Message.objects.get(pk=message.pk).removed_by == "moderator"


@pytest.mark.parametrize("remove", ["recall", "moderator"])
def test_removal_drops_the_reactions_and_the_mentions(user, other_user, team, remove):
    """A removed message names nobody and carries no reactions (contract 15's tombstone): its
    reactions are gone from every page, and it no longer counts in mention_count or the badge."""
    conversation, carol, dave = team
    sent = post_message(client_for(user), conversation, content="hi @carol", mentions=[str(carol.pk), "all"]).json()
    message = Message.objects.get(pk=int(sent["message_id"][1:]))
    for member, emoji in ((carol, "👍"), (dave, "🎉")):
        url = f"/v1/conversations/c{conversation.pk}/messages/m{message.pk}/reactions/{emoji}"
        assert client_for(member).put(url).status_code == 200
    item = f"/v1/conversations/c{conversation.pk}"
    assert [client_for(u).get(item).json()["mention_count"] for u in (carol, dave)] == [1, 1]

    if remove == "recall":
        body = recall(client_for(user), message).json()
    else:
        message_remove(message=message)
        body = client_for(user).get(f"{item}/messages").json()["messages"][0]

    assert (body["status"], body["mentions"], body["mentions_all"], body["reactions"]) == ("removed", [], False, [])
    for member in (carol, dave):
        (shown,) = client_for(member).get(f"{item}/messages").json()["messages"]
        assert (shown["mentions"], shown["mentions_all"], shown["reactions"]) == ([], False, [])
        assert client_for(member).get(item).json()["mention_count"] == 0
        assert client_for(member).get("/v1/user/me/unread").json()["mentions"] == 0
    assert not Reaction.objects.filter(message=message).exists()
    assert not Mention.objects.filter(message=message).exists()
    # The stored new_message a replay would give shows the tombstone, mentions and all.
    (replayed,) = [e for e in events_of(carol, "new_message") if e["data"]["message_id"] == f"m{message.pk}"]
    assert (replayed["data"]["mentions"], replayed["data"]["mentions_all"]) == ([], False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://")
def test_two_recalls_at_once_one_wins(user, other_user):
    """The sender and the group owner recall the same message at the same moment: exactly one
    200, one 409, one message_status (the conversation row lock, select_for_update)."""
    group = group_of(user, other_user)
    message = send(other_user, group.conversation, "racing")
    start = threading.Barrier(2)
    statuses = []

    def run(who):
        try:
            client = client_for(who)
            start.wait()
            statuses.append(recall(client, message).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(who,)) for who in (user, other_user)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]
    assert len(events_of(user, "message_status")) == 1
