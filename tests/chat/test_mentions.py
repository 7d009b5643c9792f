"""Mentions (contract 18, with the block rule of 16): validated against membership, "all" for a
group's owner and admins, mention_count in the conversation list's one query, unread mentions,
conversation_read's mention_count, and pushes through a mute and "notify: mentions"."""

import pytest

from chat.models import Membership, Mention
from chat.services import conversation_mark_read, conversation_settings_update, mentions_validated
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import post_message
from tests.conftest import client_for, events_of, group_of, make_user, private_chat, send
from tests.push.conftest import fake_fcm  # noqa: F401 (a fixture of TestPush)
from tests.push.test_pipeline import push_round, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(user, other_user, stranger):
    """alice owns it, bob is an admin, mallory a plain member."""
    group = group_of(user, other_user, stranger)
    Membership.objects.filter(conversation=group.conversation, user=other_user).update(role="admin")
    return group.conversation


def mention(sender, conversation, mentions, content="hey"):
    return post_message(client_for(sender), conversation, content=content, mentions=mentions)


def item(user, conversation):
    return client_for(user).get(f"/v1/conversations/c{conversation.pk}").json()


def test_a_message_carries_its_mentions(user, other_user, stranger, team):
    response = mention(user, team, [str(other_user.pk), str(stranger.pk), str(other_user.pk)])
    assert response.status_code == 201
    body = response.json()
    assert (sorted(body["mentions"]), body["mentions_all"]) == (sorted([str(other_user.pk), str(stranger.pk)]), False)
    assert events_of(stranger, "new_message")[-1]["data"]["mentions"] == body["mentions"]
    assert post_message(client_for(user), team, content="plain").json()["mentions"] == []


def test_a_non_member_or_a_malformed_id_is_a_400(user, team):
    outsider = make_user("otto")
    for mentions in ([str(outsider.pk)], ["999999"], ["bob"], [""]):
        assert_error(mention(user, team, mentions), 400)
    assert not Mention.objects.exists()


def test_at_most_50(user, other_user, team):
    assert_error(mention(user, team, [str(other_user.pk)] * 51), 400)
    assert mention(user, team, [str(other_user.pk)] * 50).status_code == 201


@pytest.mark.parametrize("sender, status", [("user", 201), ("other_user", 201), ("stranger", 403)])
def test_all_is_for_the_owner_and_admins(request, team, sender, status):
    response = mention(request.getfixturevalue(sender), team, ["all"])
    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["mentions_all"] is True


def test_all_in_a_private_conversation_is_a_400(user, other_user):
    assert_error(mention(user, private_chat(user, other_user), ["all"]), 400)


def test_a_stranger_mentioning_gets_404(user, other_user, team):
    assert_error(mention(make_user("otto"), team, [str(other_user.pk)]), 404)


def test_the_edit_helper_can_validate_mentions(user, other_user, stranger, team):
    assert mentions_validated(conversation_id=team.pk, sender=user, raw=[str(stranger.pk), "all"]) == (
        [stranger.pk],
        True,
    )


def test_an_edit_replaces_the_mentions_and_one_without_them_keeps_them(user, other_user, stranger, team):
    body = mention(user, team, [str(stranger.pk)]).json()
    url = f"/v1/conversations/c{team.pk}/messages/{body['message_id']}"
    edited = client_for(user).patch(url, {"content": "hey you", "mentions": [str(other_user.pk)]}, format="json")
    assert edited.status_code == 200, edited.content
    assert (edited.json()["mentions"], edited.json()["mentions_all"]) == ([str(other_user.pk)], False)
    assert (item(stranger, team)["mention_count"], item(other_user, team)["mention_count"]) == (0, 1)
    assert events_of(stranger, "message_updated")[-1]["data"]["message"]["mentions"] == [str(other_user.pk)]
    kept = client_for(user).patch(url, {"content": "hey again"}, format="json").json()
    assert kept["mentions"] == [str(other_user.pk)]
    assert_error(
        client_for(user).patch(url, {"content": "x", "mentions": [str(make_user("otto").pk)]}, format="json"), 400
    )
    assert_error(client_for(stranger).patch(url, {"content": "x", "mentions": ["all"]}, format="json"), 403)


class TestMentionCount:
    def test_hidden_and_cleared_mentions_do_not_count(self, user, stranger, team):
        hidden = mention(user, team, [str(stranger.pk)]).json()
        mention(user, team, ["all"])
        client = client_for(stranger)
        assert client.delete(f"/v1/conversations/c{team.pk}/messages/{hidden['message_id']}").status_code == 204
        assert item(stranger, team)["mention_count"] == 1
        assert client.post(f"/v1/conversations/c{team.pk}/clear").status_code == 204
        assert item(stranger, team)["mention_count"] == 0
        mention(user, team, ["all"])
        assert item(stranger, team)["mention_count"] == 1

    def test_counts_unread_mentions_of_the_user_and_of_all(self, user, other_user, stranger, team):
        mention(user, team, [str(stranger.pk)])
        mention(user, team, ["all"])
        mention(user, team, [str(other_user.pk)])
        send(user, team, "no mention")
        assert item(stranger, team)["mention_count"] == 2
        assert item(other_user, team)["mention_count"] == 2
        assert item(user, team)["mention_count"] == 0  # their own messages
        unread = client_for(stranger).get("/v1/user/me/unread").json()
        assert (unread["unread_messages"], unread["mentions"]) == (4, 2)

    def test_reading_clears_it_and_conversation_read_tells(self, user, stranger, team):
        first = mention(user, team, [str(stranger.pk)]).json()
        mention(user, team, ["all"])
        conversation_mark_read(user=stranger, conversation_id=team.pk, message_id=int(first["message_id"][1:]))
        assert item(stranger, team)["mention_count"] == 1
        assert events_of(stranger, "conversation_read")[-1]["data"]["mention_count"] == 1

    def test_a_mention_by_someone_the_user_blocks_counts_nowhere(self, user, stranger, team):
        client_for(stranger).put(f"/v1/blocks/{user.pk}")
        mention(user, team, [str(stranger.pk)])
        mention(user, team, ["all"])
        assert item(stranger, team)["mention_count"] == 0
        assert client_for(stranger).get("/v1/user/me/unread").json()["mentions"] == 0
        client_for(stranger).delete(f"/v1/blocks/{user.pk}")  # unblocking restores it
        assert item(stranger, team)["mention_count"] == 2

    @pytest.mark.parametrize("rows", [1, 30])
    def test_the_list_stays_one_query(self, user, rows, django_assert_max_num_queries):
        for i in range(rows):
            peer = make_user(f"p{i:02d}")
            group = group_of(peer, user)
            send(peer, group.conversation, "hi @alice", mentions=[str(user.pk)])
        client = client_for(user)
        with django_assert_max_num_queries(2):  # auth + the page with its total
            body = client.get("/v1/conversations", {"limit": 100}).json()
        assert [c["mention_count"] for c in body["conversations"]] == [1] * rows


class TestPush:
    """Where a mention pushes (the pipeline's own tests cover the rest)."""

    pytestmark = pytest.mark.django_db(transaction=True)

    @pytest.fixture(autouse=True)
    def _phone(self, fake_fcm, stranger):  # noqa: F811
        register(stranger, "phone")

    @staticmethod
    def pushes():
        return push_round()

    @pytest.mark.parametrize("change", [{"muted": True}, {"notify": "mentions"}])
    def test_a_mention_pushes_through_a_mute_and_notify_mentions(self, user, stranger, team, change):
        conversation_settings_update(user=stranger, conversation_id=team.pk, **change)
        send(user, team, "nothing for you")
        assert self.pushes() == 0
        send(user, team, "you", mentions=[str(stranger.pk)])
        assert self.pushes() == 1
        send(user, team, "everyone", mentions=["all"])
        assert self.pushes() == 1

    def test_notify_none_pushes_no_mention(self, user, stranger, team):
        conversation_settings_update(user=stranger, conversation_id=team.pk, notify="none")
        send(user, team, "you", mentions=[str(stranger.pk)])
        assert self.pushes() == 0

    def test_a_mention_by_someone_the_user_blocks_pushes_nothing(self, user, other_user, stranger, team):
        conversation_settings_update(user=stranger, conversation_id=team.pk, muted=True)
        client_for(stranger).put(f"/v1/blocks/{user.pk}")
        send(user, team, "you", mentions=[str(stranger.pk)])
        assert self.pushes() == 0
        send(other_user, team, "you", mentions=[str(stranger.pk)])  # someone else's mention still does
        assert self.pushes() == 1
