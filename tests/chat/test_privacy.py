"""Chat's part of a data export and of an erasure (privacy.services): the user's reactions, the
mentions of them and their messages' edit history are exported; reactions and mentions go with
the account."""

from urllib.parse import quote

import pytest

from chat.models import Mention, Reaction
from privacy.services import user_delete, user_export
from tests.chat.test_api import post_message
from tests.conftest import client_for, events_of, group_of, make_user, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def choir(user, other_user):
    """alice owns the group with bob and carol."""
    return group_of(user, other_user, make_user("carol")).conversation


def react(user, message, emoji):
    url = f"/v1/conversations/c{message.conversation_id}/messages/m{message.pk}/reactions/{quote(emoji)}"
    assert client_for(user).put(url).status_code == 200


def test_the_export_has_the_users_reactions_and_mentions(user, other_user, choir):
    theirs = send(other_user, choir, "bob speaks")
    react(user, theirs, "👍")
    react(other_user, theirs, "🎉")  # bob's reaction: not alice's data
    mine = post_message(client_for(user), choir, content="hi bob", mentions=[str(other_user.pk)]).json()
    mentioning = post_message(client_for(other_user), choir, content="hi alice", mentions=[str(user.pk)]).json()

    export = user_export(user)

    assert [(r["message_id"], r["conversation_id"], r["emoji"]) for r in export["reactions"]] == [
        (f"m{theirs.pk}", f"c{choir.pk}", "👍")
    ]
    (written,) = [m for m in export["messages"] if m["message_id"] == mine["message_id"]]
    assert (written["mentions"], written["mentions_all"]) == ([str(other_user.pk)], False)
    assert [(m["message_id"], m["sender_id"]) for m in export["mentioned_in"]] == [
        (mentioning["message_id"], str(other_user.pk))
    ]
    assert all("content" not in m for m in user_export(user)["mentioned_in"])  # not others' words


def test_the_export_has_what_the_users_messages_said_before_each_edit(user, other_user, choir):
    mine = send(user, choir, "see you at 5")
    for content in ("see you at 6", "see you at 7"):
        url = f"/v1/conversations/c{choir.pk}/messages/m{mine.pk}"
        assert client_for(user).patch(url, {"content": content}, format="json").status_code == 200
    theirs = send(other_user, choir, "bob's")
    assert (
        client_for(other_user)
        .patch(f"/v1/conversations/c{choir.pk}/messages/m{theirs.pk}", {"content": "bob's, edited"}, format="json")
        .status_code
        == 200
    )  # bob's edit: not alice's data

    edits = user_export(user)["message_edits"]

    assert [(e["message_id"], e["conversation_id"], e["content"]) for e in edits] == [
        (f"m{mine.pk}", f"c{choir.pk}", "see you at 5"),
        (f"m{mine.pk}", f"c{choir.pk}", "see you at 6"),
    ]
    assert all(e["edited_at"] is not None and e["caption"] == "" for e in edits)


def test_erasure_takes_the_reactions_back_and_tells_the_members(user, other_user, choir):
    message = send(other_user, choir, "react to me")
    for emoji in ("👍", "🎉"):
        react(user, message, emoji)
    react(other_user, message, "👍")
    post_message(client_for(other_user), choir, content="hi alice", mentions=[str(user.pk)])

    user_delete(user=user)

    assert list(Reaction.objects.filter(message=message).values_list("user_id", "emoji")) == [(other_user.pk, "👍")]
    assert not Mention.objects.filter(user=user).exists()
    removed = [e["data"] for e in events_of(other_user, "reaction_update") if e["data"]["action"] == "remove"]
    assert sorted((e["emoji"], e["user_id"], e["count"]) for e in removed) == [
        ("🎉", str(user.pk), 0),
        ("👍", str(user.pk), 1),
    ]
    (shown,) = client_for(other_user).get(f"/v1/conversations/c{choir.pk}/messages").json()["messages"][1:]
    assert shown["reactions"] == [{"emoji": "👍", "count": 1, "reacted": True}]
