"""Removal is complete (contract 15): after a moderator's removal or a recall, no route returns
the original text, caption or media of the message: history, the list's last_message, search,
the stored events replayed by /v1/sync and /ws?since=, and pushes."""

import pytest
from channels.db import database_sync_to_async

from chat.services import message_edit, message_recall, message_remove
from tests.conftest import client_for, events_of, private_chat, send

pytestmark = pytest.mark.django_db

SECRET = "meet me at the old mill"


def _sync(viewer, since="0"):
    response = client_for(viewer).get(f"/v1/sync?since={since}")
    assert response.status_code == 200
    return response.json()["events"]


class TestModeratorRemoval:
    def test_sync_from_before_the_send_replays_the_tombstone(self, user, other_user):
        conversation = private_chat(user, other_user)
        before = {viewer: events_of(viewer)[-1]["id"] if events_of(viewer) else "0" for viewer in (user, other_user)}
        message = send(user, conversation, SECRET, temp_id="t-1")

        message_remove(message=message)

        for viewer in (user, other_user):
            replay = _sync(viewer, before[viewer])
            assert SECRET not in str(replay)
            sent = [e for e in replay if e["type"] == "new_message"]
            assert [(e["data"]["message_id"], e["data"]["status"], e["data"]["content"]) for e in sent] == [
                (f"m{message.pk}", "removed", "")
            ]
        # The sender's own variant keeps its temp_id, so the app still matches its pending bubble.
        own = [e for e in _sync(user) if e["type"] == "new_message"][0]
        assert own["data"]["temp_id"] == "t-1"

    def test_no_route_returns_the_text(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, SECRET)

        message_remove(message=message)

        client = client_for(other_user)
        history = client.get(f"/v1/conversations/c{conversation.pk}/messages").json()
        listed = client.get("/v1/conversations").json()
        found = client.get("/v1/messages/search?q=mill").json()
        assert SECRET not in str(history) and SECRET not in str(listed)
        assert listed["conversations"][0]["last_message"]["content"] == ""
        assert found == {"total": 0, "messages": []}


def test_a_reply_replayed_after_its_original_was_removed_quotes_nothing(user, other_user):
    conversation = private_chat(user, other_user)
    original = send(user, conversation, SECRET)
    reply = client_for(other_user).post(
        f"/v1/conversations/c{conversation.pk}/messages",
        {"type": "text", "content": "where?", "reply_to": f"m{original.pk}"},
        format="json",
    )
    assert reply.status_code == 201 and reply.json()["reply_to"]["preview"] == SECRET

    message_remove(message=original)

    for viewer in (user, other_user):
        replay = _sync(viewer)
        assert SECRET not in str(replay)
        replies = [
            e for e in replay if e["type"] == "new_message" and e["data"]["message_id"] == reply.json()["message_id"]
        ]
        assert [
            (e["data"]["content"], e["data"]["reply_to"]["status"], e["data"]["reply_to"]["preview"]) for e in replies
        ] == [("where?", "removed", "")]


class TestRecall:
    def test_an_edited_then_recalled_message_leaves_nothing_in_the_log(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "first words")
        message_edit(user=user, conversation_id=conversation.pk, message_id=message.pk, content=SECRET)

        message_recall(user=user, conversation_id=conversation.pk, message_id=message.pk)

        for viewer in (user, other_user):
            replay = _sync(viewer)
            assert SECRET not in str(replay) and "first words" not in str(replay)
            (updated,) = [e for e in replay if e["type"] == "message_updated"]
            assert (updated["data"]["message"]["status"], updated["data"]["message"]["removed_by"]) == (
                "removed",
                "sender",
            )
        client = client_for(other_user)
        assert client.get("/v1/messages/search?q=mill").json()["total"] == 0
        assert client.get(f"/v1/conversations/c{conversation.pk}").json()["last_message"]["content"] == ""
        assert SECRET not in str(client.get(f"/v1/conversations/c{conversation.pk}/messages").json())

    def test_other_messages_events_are_untouched(self, user, other_user):
        conversation = private_chat(user, other_user)
        kept = send(user, conversation, "kept words")
        message_recall(user=user, conversation_id=conversation.pk, message_id=send(user, conversation, SECRET).pk)
        sent = [e["data"] for e in _sync(other_user) if e["type"] == "new_message"]
        assert (sent[0]["message_id"], sent[0]["content"]) == (f"m{kept.pk}", "kept words")


@pytest.mark.django_db(transaction=True)
async def test_ws_replay_from_before_the_send_shows_the_tombstone(user, other_user):
    from tests.realtime.test_consumer import frames, open_socket

    conversation = await database_sync_to_async(private_chat)(user, other_user)
    message = await database_sync_to_async(send)(user, conversation, SECRET)
    await database_sync_to_async(message_remove)(message=message)

    socket = await open_socket(other_user, query="since=0", ready=False)
    replayed = await frames(socket, 2)
    await socket.disconnect()
    assert [f["type"] for f in replayed] == ["new_message", "message_status"]
    assert replayed[0]["data"]["content"] == "" and replayed[0]["data"]["status"] == "removed"
    assert SECRET not in str(replayed)
