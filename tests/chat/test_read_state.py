"""Read state on every device (contract 13)."""

from tests.conftest import client_for, events_of, group_of, private_chat, send


def mark_read(user, conversation, message):
    return client_for(user).post(
        f"/v1/conversations/c{conversation.pk}/read", {"message_id": f"m{message.pk}"}, format="json"
    )


def test_a_forward_move_of_the_read_pointer_tells_the_readers_own_devices(user, other_user):
    conversation = private_chat(user, other_user)
    first = send(user, conversation, "one")
    second = send(user, conversation, "two")
    send(user, conversation, "three")

    response = mark_read(other_user, conversation, second)
    assert response.json()["unread_count"] == 1
    (event,) = events_of(other_user, "conversation_read")
    assert event["id"]  # durable: it replays with since and appears in /v1/sync
    assert event["data"] | {"updated_at": None} == {
        "conversation_id": f"c{conversation.pk}",
        "last_read_message_id": f"m{second.pk}",
        "unread_count": 1,
        "mention_count": 0,
        "updated_at": None,
    }
    assert not events_of(user, "conversation_read")  # the other member's devices learn nothing

    mark_read(other_user, conversation, first)  # backwards: the pointer does not move
    assert len(events_of(other_user, "conversation_read")) == 1


def test_the_websocket_read_frame_goes_through_the_same_rule(user, other_user):
    from chat.frames import message_read

    conversation = private_chat(user, other_user)
    message = send(user, conversation)
    message_read(other_user.pk, {"conversation_id": f"c{conversation.pk}", "message_id": f"m{message.pk}"})
    (event,) = events_of(other_user, "conversation_read")
    assert event["data"]["unread_count"] == 0


def test_sync_carries_conversation_read(user, other_user):
    conversation = private_chat(user, other_user)
    message = send(user, conversation)
    mark_read(other_user, conversation, message)
    frames = client_for(other_user).get("/v1/sync?since=0").json()["events"]
    assert "conversation_read" in [frame["type"] for frame in frames]


def test_unread_summary(user, other_user, stranger):
    one = private_chat(user, other_user)
    send(user, one)
    send(user, one)
    group = group_of(stranger, other_user)
    send(stranger, group.conversation)
    read = private_chat(stranger, other_user)
    mark_read(other_user, read, send(stranger, read))

    response = client_for(other_user).get("/v1/user/me/unread")
    assert response.status_code == 200
    assert response.json() == {"badge": 2, "unread_conversations": 2, "unread_messages": 3, "mentions": 0}
    assert client_for(user).get("/v1/user/me/unread").json()["badge"] == 0  # own messages are never unread


def test_unread_summary_is_one_query_whatever_the_number_of_conversations(
    user, other_user, django_assert_max_num_queries
):
    from accounts.models import User

    client = client_for(other_user)
    for index in range(30):
        peer = User.objects.create(username=f"peer{index}")
        send(peer, private_chat(peer, other_user))
    with django_assert_max_num_queries(2):  # the token's user, then the summary
        assert client.get("/v1/user/me/unread").json()["badge"] == 30
