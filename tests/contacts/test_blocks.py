"""Blocks (contract 16): the routes, and every entry point that consults them, in both directions
where the contract says so; unblocking restores each."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import user_mark_banned
from contacts import selectors
from contacts.models import Block
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for, events_of, group_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


def block(blocker, blocked):
    return client_for(blocker).put(f"/v1/blocks/{blocked.pk}")


def unblock(blocker, blocked):
    return client_for(blocker).delete(f"/v1/blocks/{blocked.pk}")


class TestRoutes:
    def test_block_is_idempotent_and_tells_own_devices_once(self, user, other_user):
        assert block(user, other_user).status_code == 204
        assert block(user, other_user).status_code == 204
        assert Block.objects.filter(owner=user, user=other_user).count() == 1
        assert [e["data"] for e in events_of(user, "block_update")] == [
            {"user_id": str(other_user.pk), "blocked": True}
        ]
        assert events_of(other_user, "block_update") == []

    def test_unblock_is_idempotent_and_tells_own_devices_once(self, user, other_user):
        block(user, other_user)
        assert unblock(user, other_user).status_code == 204
        assert unblock(user, other_user).status_code == 204
        assert not Block.objects.exists()
        assert [e["data"]["blocked"] for e in events_of(user, "block_update")] == [True, False]

    def test_list_newest_first(self, user, other_user, stranger):
        block(user, other_user)
        block(user, stranger)
        body = client_for(user).get("/v1/blocks").json()
        assert body["total"] == 2
        assert [u["user_id"] for u in body["users"]] == [str(stranger.pk), str(other_user.pk)]
        assert set(body["users"][0]) == {"user_id", "username", "nickname", "avatar", "blocked_at"}
        assert client_for(user).get("/v1/blocks", {"offset": 1}).json()["users"][0]["username"] == "bob"
        assert client_for(other_user).get("/v1/blocks").json() == {"total": 0, "users": []}

    @pytest.mark.parametrize("rows", [1, 50])
    def test_list_queries_do_not_grow_with_the_page(self, user, rows, django_assert_max_num_queries):
        Block.objects.bulk_create([Block(owner=user, user=make_user(f"b{i}")) for i in range(rows)])
        client = client_for(user)
        with django_assert_max_num_queries(3):
            assert len(client.get("/v1/blocks").json()["users"]) == rows

    def test_blocking_yourself_is_400(self, user):
        assert_error(block(user, user), 400)

    @pytest.mark.parametrize("user_id", ["999999", "0"])
    def test_unknown_user_is_404(self, user_api, user_id):
        assert_error(user_api.put(f"/v1/blocks/{user_id}"), 404)
        assert_error(user_api.delete(f"/v1/blocks/{user_id}"), 404)

    def test_a_banned_user_can_be_blocked_and_unblocked(self, user, other_user):
        user_mark_banned(user=other_user, reason="spam")
        assert block(user, other_user).status_code == 204
        assert unblock(user, other_user).status_code == 204

    def test_at_most_blocks_max(self, user, other_user, stranger, settings):
        settings.BLOCKS_MAX = 1
        block(user, other_user)
        assert_error(block(user, stranger), 409)
        assert block(user, other_user).status_code == 204  # already blocked: still idempotent


def post_message(sender, conversation, content="hi"):
    return client_for(sender).post(
        f"/v1/conversations/c{conversation.pk}/messages", {"content": content}, format="json"
    )


def open_private(user, target):
    return client_for(user).post("/v1/conversations", {"type": "private", "target_id": str(target.pk)}, format="json")


@pytest.fixture(params=["blocker", "blocked"])
def pair(request, user, other_user):
    """(actor, target, unblock) with user having blocked other_user: the actor is either side."""
    block(user, other_user)
    actor, target = (user, other_user) if request.param == "blocker" else (other_user, user)
    return actor, target, lambda: unblock(user, other_user)


class TestPrivateMessages:
    def test_sending_is_403_both_ways_with_the_reason(self, user, other_user):
        conversation = private_chat(user, other_user)
        block(user, other_user)
        assert "unblock" in assert_error(post_message(user, conversation), 403)["details"]
        assert "does not accept messages" in assert_error(post_message(other_user, conversation), 403)["details"]
        assert not events_of(user, "new_message") and not events_of(other_user, "new_message")
        unblock(user, other_user)
        assert post_message(user, conversation).status_code == 201
        assert post_message(other_user, conversation).status_code == 201

    def test_a_retry_of_a_message_sent_before_the_block_gets_it_back(self, user, other_user):
        conversation = private_chat(user, other_user)
        body = {"content": "hi", "temp_id": "t1"}
        client_for(user).post(f"/v1/conversations/c{conversation.pk}/messages", body, format="json")
        block(other_user, user)
        again = client_for(user).post(f"/v1/conversations/c{conversation.pk}/messages", body, format="json")
        assert again.status_code == 200

    def test_opening_a_new_conversation_is_403(self, pair):
        actor, target, restore = pair
        assert_error(open_private(actor, target), 403)
        restore()
        assert open_private(actor, target).status_code == 201

    def test_an_existing_conversation_still_opens(self, user, other_user):
        private_chat(user, other_user)
        block(user, other_user)
        assert open_private(other_user, user).status_code == 200

    def test_group_messages_stay_visible_to_both(self, user, other_user):
        group = group_of(user, other_user)
        block(user, other_user)
        assert post_message(other_user, group.conversation).status_code == 201
        assert post_message(user, group.conversation).status_code == 201
        assert len(events_of(user, "new_message")) == len(events_of(other_user, "new_message")) == 2

    @pytest.mark.parametrize("members", [2, 40])
    def test_a_group_send_costs_no_query_for_blocks(self, user, members):
        others = [make_user(f"m{i}") for i in range(members)]
        group = group_of(user, *others)
        for other in others:
            block(other, user)
        send(user, group.conversation, "warm up")
        with CaptureQueriesContext(connection) as queries:
            send(user, group.conversation)
        assert not any("contacts_" in query["sql"] for query in queries.captured_queries)

    def test_a_private_send_asks_once(self, user, other_user):
        conversation = private_chat(user, other_user)
        with CaptureQueriesContext(connection) as queries:
            send(user, conversation)
        assert sum("contacts_block" in query["sql"] for query in queries.captured_queries) == 1


class TestCalls:
    def test_starting_a_call_is_403_both_ways_without_incoming_call(self, pair):
        actor, target, restore = pair
        body = {"target_id": str(target.pk), "type": "audio", "offer_sdp": "v=0"}
        assert_error(client_for(actor).post("/v1/calls", body, format="json"), 403)
        assert events_of(target, "incoming_call") == []
        restore()
        assert client_for(actor).post("/v1/calls", body, format="json").status_code == 201
        assert len(events_of(target, "incoming_call")) == 1


class TestGroups:
    def test_the_blocked_user_cannot_add_the_blocker(self, user, other_user, stranger):
        group = group_of(other_user, stranger)
        block(user, other_user)
        invite = {"user_ids": [str(user.pk)]}
        response = client_for(other_user).post(f"/v1/groups/g{group.pk}/members", invite, format="json")
        assert response.status_code == 200 and response.json()["invited_users"] == []
        assert events_of(user, "group_update") == []
        unblock(user, other_user)
        response = client_for(other_user).post(f"/v1/groups/g{group.pk}/members", invite, format="json")
        assert response.json()["invited_users"] == [str(user.pk)]

    def test_creating_a_group_skips_the_blocker(self, user, other_user, stranger):
        block(user, other_user)
        body = {"type": "group", "name": "Team", "members": [str(user.pk), str(stranger.pk)]}
        group_id = client_for(other_user).post("/v1/conversations", body, format="json").json()["target_id"]
        members = client_for(other_user).get(f"/v1/groups/{group_id}/members").json()["members"]
        assert {m["user_id"] for m in members} == {str(other_user.pk), str(stranger.pk)}


class TestSearch:
    def test_the_blocked_user_does_not_find_the_blocker(self, user, other_user):
        block(user, other_user)
        found = client_for(other_user).get("/v1/users/search", {"query": "alice"}).json()
        assert found == {"total": 0, "users": []}
        # As the contract writes it: the blocker still finds the blocked.
        assert client_for(user).get("/v1/users/search", {"query": "bob"}).json()["total"] == 1
        unblock(user, other_user)
        assert client_for(other_user).get("/v1/users/search", {"query": "alice"}).json()["total"] == 1


class TestSelectorsForOtherEntryPoints:
    """The selectors typing, mentions and pushes call (built in their own branches)."""

    def test_not_refusing_ids_leaves_out_who_blocked_the_actor(self, user, other_user, stranger):
        block(other_user, user)
        block(user, stranger)  # the actor's own blocks do not silence the actor's mentions
        assert selectors.not_refusing_ids(actor_id=user.pk, user_ids=[other_user.pk, stranger.pk]) == {stranger.pk}
        unblock(other_user, user)
        assert selectors.not_refusing_ids(actor_id=user.pk, user_ids=[other_user.pk]) == {other_user.pk}

    def test_typing_hidden_from_both_directions_of_a_block_and_everyone_without_send_typing(
        self, user, other_user, stranger
    ):
        assert selectors.typing_hidden_from(user.pk) == set()
        block(other_user, user)
        block(user, stranger)
        assert selectors.typing_hidden_from(user.pk) == {other_user.pk, stranger.pk}
        client_for(user).patch("/v1/user/me/settings", {"send_typing": False}, format="json")
        assert selectors.typing_hidden_from(user.pk) is None

    def test_blocked_between(self, user, other_user):
        assert not selectors.blocked_between(user.pk, other_user.pk)
        block(other_user, user)
        assert selectors.blocked_between(user.pk, other_user.pk) and selectors.blocked_between(other_user.pk, user.pk)

    def test_an_erased_account_leaves_every_block_list(self, user, other_user):
        from privacy.services import user_delete

        block(user, other_user)
        block(other_user, user)
        user_delete(user=other_user)
        assert not Block.objects.exists()
