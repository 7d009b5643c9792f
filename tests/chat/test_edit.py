"""Editing a message (contract 15): by its sender, within the window, at most 20 times."""

from datetime import timedelta

import pytest
from django.test import Client

from chat.models import Message, MessageEdit
from chat.services import MAX_EDITS, message_remove
from moderation import services as moderation
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import history, post_message
from tests.conftest import client_for, events_of, group_of, make_user, private_chat, send
from tests.media.conftest import post_upload
from tests.media.files import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user, other_user):
    return private_chat(user, other_user)


def edit(client, message, **body):
    return client.patch(f"/v1/conversations/c{message.conversation_id}/messages/m{message.pk}", body, format="json")


class TestEdit:
    def test_the_sender_edits_the_text(self, user_api, user, other_user, conversation):
        message = send(user, conversation, "see you at 5")
        assert post_message(user_api, conversation, content="later").json()["edited_at"] is None

        response = edit(user_api, message, content="see you at 6")

        assert response.status_code == 200
        body = response.json()
        assert body["message_id"] == f"m{message.pk}" and body["content"] == "see you at 6"
        assert body["edited_at"] is not None and body["edited_at"] == body["updated_at"]
        listed = history(client_for(other_user), conversation).json()["messages"][-1]
        assert (listed["content"], listed["edited_at"]) == ("see you at 6", body["edited_at"])

    def test_members_get_message_updated(self, user_api, user, other_user, conversation):
        message = send(user, conversation, "draft")
        body = edit(user_api, message, content="final").json()
        for member in (user, other_user):
            (event,) = events_of(member, "message_updated")
            assert event["data"] == {"message": body}
        # Durable: it replays with /v1/sync.
        synced = client_for(other_user).get("/v1/sync?since=0").json()["events"]
        assert [e["type"] for e in synced][-1] == "message_updated"

    def test_the_message_shows_its_read_status(self, user_api, user, other_user, conversation):
        message = send(user, conversation, "draft")
        client_for(other_user).post(
            f"/v1/conversations/c{conversation.pk}/read", {"message_id": f"m{message.pk}"}, format="json"
        )
        assert edit(user_api, message, content="final").json()["status"] == "read"
        assert events_of(other_user, "message_updated")[0]["data"]["message"]["status"] == "read"

    def test_history_of_edits_is_kept(self, user_api, user, conversation):
        message = send(user, conversation, "first")
        edit(user_api, message, content="second")
        edit(user_api, message, content="third")
        edits = MessageEdit.objects.filter(message=message).order_by("pk")
        assert [(e.content, e.editor_id) for e in edits] == [("first", user.pk), ("second", user.pk)]
        assert all(e.edited_at is not None for e in edits)

    def test_a_media_message_is_edited_by_its_caption(self, user_api, user, conversation):
        photo = post_upload(user_api, image_bytes("JPEG"), "image", "photo.jpg").json()
        sent = post_message(user_api, conversation, type="image", content=photo["media_id"], caption="Look").json()
        message = Message.objects.get(pk=int(sent["message_id"][1:]))

        body = edit(user_api, message, caption="Look at this").json()
        assert (body["caption"], body["content"]) == ("Look at this", photo["media_id"])
        assert body["media"]["media_id"] == photo["media_id"]
        assert_error(edit(user_api, message, content="text"), 400)
        assert MessageEdit.objects.get().caption == "Look"

    def test_the_search_index_follows(self, user_api, user, other_user, conversation):
        message = send(user, conversation, "lunch at noon")
        edit(user_api, message, content="dinner at eight")
        search = client_for(other_user).get
        assert search("/v1/messages/search?q=lunch").json()["total"] == 0
        found = search("/v1/messages/search?q=dinner").json()
        assert [m["message_id"] for m in found["messages"]] == [f"m{message.pk}"]
        assert found["messages"][0]["content"] == "dinner at eight"

    def test_mentions_are_ignored_until_messages_carry_them(self, user_api, user, other_user, conversation):
        message = send(user, conversation, "hi")
        response = edit(user_api, message, content="hi Bob", mentions=[str(other_user.pk)])
        assert response.status_code == 200 and response.json()["content"] == "hi Bob"


class TestRefused:
    def test_not_the_sender_is_403(self, user, other_user, conversation):
        message = send(user, conversation, "mine")
        assert_error(edit(client_for(other_user), message, content="yours"), 403)
        assert Message.objects.get(pk=message.pk).content == "mine"
        assert events_of(other_user, "message_updated") == []

    def test_a_group_owner_cannot_edit_others(self, user, other_user):
        message = send(other_user, group_of(user, other_user).conversation, "mine")
        assert_error(edit(client_for(user), message, content="owned"), 403)

    def test_outside_the_window_is_403(self, user_api, user, conversation, settings):
        settings.MESSAGE_EDIT_WINDOW_SECONDS = 60
        message = send(user, conversation, "old")
        Message.objects.filter(pk=message.pk).update(created_at=message.created_at - timedelta(seconds=61))
        assert_error(edit(user_api, message, content="new"), 403)
        Message.objects.filter(pk=message.pk).update(created_at=message.created_at - timedelta(seconds=59))
        assert edit(user_api, message, content="new").status_code == 200

    def test_at_most_20_edits(self, user_api, user, conversation):
        message = send(user, conversation, "v0")
        for n in range(1, MAX_EDITS + 1):
            assert edit(user_api, message, content=f"v{n}").status_code == 200
        assert MAX_EDITS == 20
        assert_error(edit(user_api, message, content="one more"), 403)
        assert Message.objects.get(pk=message.pk).content == "v20"

    def test_a_removed_message_is_409(self, user_api, user, conversation):
        message = send(user, conversation, "gone")
        message_remove(message=message)
        assert_error(edit(user_api, message, content="back"), 409)

    @pytest.mark.parametrize(
        "body", [{}, {"content": ""}, {"content": "   "}, {"content": "x" * 10_001}, {"caption": "c"},
                 {"content": "a", "caption": "b"}, {"content": 5}]
    )  # fmt: skip
    def test_invalid_content_is_400(self, user_api, user, conversation, body):
        message = send(user, conversation, "fine")
        assert_error(edit(user_api, message, **body), 400)
        assert Message.objects.get(pk=message.pk).content == "fine"

    def test_a_message_of_another_conversation_is_404(self, user_api, user, other_user, conversation):
        elsewhere = send(user, private_chat(user, make_user("carol")), "elsewhere")
        url = f"/v1/conversations/c{conversation.pk}/messages/m{elsewhere.pk}"
        assert_error(user_api.patch(url, {"content": "x"}, format="json"), 404)
        assert_error(
            user_api.patch(f"/v1/conversations/c{conversation.pk}/messages/m999999", {"content": "x"}, format="json"),
            404,
        )

    def test_a_stranger_gets_404_whatever_the_body(self, user, stranger, conversation):
        message = send(user, conversation, "fine")
        assert_error(edit(client_for(stranger), message), 404)


def test_the_admin_shows_the_edit_history(user_api, user, conversation):
    message = send(user, conversation, "what I first said")
    edit(user_api, message, content="what it says now")
    client = Client()
    client.force_login(moderation.moderator_grant(actor="cli:root", user=make_user("mod")))
    page = client.get(f"/admin/chat/message/{message.pk}/change/")
    assert page.status_code == 200
    assert b"what I first said" in page.content and b"Edit history" in page.content
