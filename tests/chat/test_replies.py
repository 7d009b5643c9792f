"""Replies (contract 18): reply_to on send, checked against the conversation, and rendered from
the original whenever the reply is read (its edit or removal shows)."""

import threading

import pytest
from django.db import connection

from chat.models import Message
from chat.services import message_remove
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import history, post_message
from tests.conftest import client_for, events_of, group_of, is_postgres, private_chat, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user, other_user):
    return private_chat(user, other_user)


def reply_of(user, conversation, original, **body):
    return post_message(client_for(user), conversation, content="answer", reply_to=f"m{original.pk}", **body)


def test_a_reply_carries_its_original(user, other_user, conversation):
    original = send(other_user, conversation, "the question")
    response = reply_of(user, conversation, original)
    assert response.status_code == 201
    expected = {
        "message_id": f"m{original.pk}",
        "sender_id": str(other_user.pk),
        "sender_name": "Bob",
        "type": "text",
        "preview": "the question",
        "status": "sent",
    }
    assert response.json()["reply_to"] == expected
    assert events_of(other_user, "new_message")[-1]["data"]["reply_to"] == expected
    assert history(client_for(other_user), conversation).json()["messages"][0]["reply_to"] == expected


def test_other_messages_carry_null(user, conversation):
    assert post_message(client_for(user), conversation, content="hi").json()["reply_to"] is None


def test_the_preview_is_at_most_100_characters(user, other_user, conversation):
    original = send(other_user, conversation, "x" * 300)
    assert reply_of(user, conversation, original).json()["reply_to"]["preview"] == "x" * 100


def test_a_media_original_has_an_empty_preview(user, other_user, conversation):
    original = Message.objects.create(conversation=conversation, seq=99, sender=other_user, type="image", content="m")
    reply = reply_of(user, conversation, original).json()["reply_to"]
    assert (reply["type"], reply["preview"]) == ("image", "")


def test_the_original_is_rendered_when_read_so_its_edit_and_removal_show(user, other_user, conversation):
    original = send(other_user, conversation, "first words")
    reply_of(user, conversation, original)
    Message.objects.filter(pk=original.pk).update(content="edited words")
    assert history(client_for(user), conversation).json()["messages"][0]["reply_to"]["preview"] == "edited words"
    message_remove(message=original)
    reply = history(client_for(user), conversation).json()["messages"][0]["reply_to"]
    assert (reply["preview"], reply["status"]) == ("", "removed")
    found = client_for(user).get("/v1/messages/search", {"q": "answer"}).json()["messages"][0]
    assert (found["reply_to"]["preview"], found["reply_to"]["status"]) == ("", "removed")


def test_the_original_read_status_shows_in_history(user, other_user, conversation):
    original = send(user, conversation, "did you read this")
    client_for(other_user).post(
        f"/v1/conversations/c{conversation.pk}/read", {"message_id": f"m{original.pk}"}, format="json"
    )
    reply_of(other_user, conversation, original)
    assert history(client_for(user), conversation).json()["messages"][0]["reply_to"]["status"] == "read"


@pytest.mark.parametrize("reply_to", ["m999999", "nonsense", "c1"])
def test_an_unknown_or_malformed_original_is_a_400(user, conversation, reply_to):
    assert_error(post_message(client_for(user), conversation, content="x", reply_to=reply_to), 400)
    assert not Message.objects.exists()


def test_an_original_of_another_conversation_is_a_400(user, other_user, conversation):
    elsewhere = send(user, group_of(user, other_user).conversation, "over there")
    assert_error(reply_of(user, conversation, elsewhere), 400)


def test_a_removed_original_is_a_400(user, other_user, conversation):
    original = send(other_user, conversation, "gone soon")
    message_remove(message=original)
    assert_error(reply_of(user, conversation, original), 400)


def test_a_stranger_replying_gets_404(user, other_user, stranger, conversation):
    original = send(other_user, conversation)
    assert_error(reply_of(stranger, conversation, original), 404)


def test_the_history_page_stays_constant_query_with_replies(
    user, other_user, conversation, django_assert_max_num_queries
):
    first = send(other_user, conversation, "root")
    for i in range(50):
        send(user, conversation, f"reply {i}", reply_to=first.pk)
    # auth, membership with read pointers, the page with senders, originals and reactions
    client = client_for(user)
    with django_assert_max_num_queries(3):
        page = history(client, conversation, limit=50).json()["messages"]
    assert {m["reply_to"]["message_id"] for m in page} == {f"m{first.pk}"}


@pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://")
@pytest.mark.django_db(transaction=True)
def test_a_recall_racing_a_reply_never_leaves_a_reply_to_a_live_original(user, other_user):
    """The reply checks its original under the conversation's lock, which removal takes too:
    either the removal came first (400) or the reply shows the removed original."""
    conversation = private_chat(user, other_user)
    for _ in range(5):
        original = send(other_user, conversation, "racing")
        results = {}

        def reply(original=original, results=results):
            results["reply"] = reply_of(user, conversation, original).status_code
            connection.close()

        def remove(original=original, results=results):
            results["removed"] = message_remove(message=Message.objects.get(pk=original.pk))
            connection.close()

        threads = [threading.Thread(target=reply), threading.Thread(target=remove)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["removed"] is True and results["reply"] in (201, 400)
        if results["reply"] == 201:
            newest = history(client_for(user), conversation).json()["messages"][0]
            assert newest["reply_to"]["status"] == "removed"
