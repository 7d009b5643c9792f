import pytest
from django.db import transaction

from chat.models import Conversation, Membership, Message
from chat.services import conversation_mark_read, message_store_call, new_message_event
from contacts.models import Contact
from groups.models import Group
from realtime import events
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for, events_of, group_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


def create_private(client, target):
    return client.post("/v1/conversations", {"type": "private", "target_id": str(target.pk)}, format="json")


def post_message(client, conversation, **body):
    body.setdefault("type", "text")
    return client.post(f"/v1/conversations/c{conversation.pk}/messages", body, format="json")


def history(client, conversation, **params):
    return client.get(f"/v1/conversations/c{conversation.pk}/messages", params)


class TestCreate:
    def test_private_conversation(self, user_api, other_user):
        response = create_private(user_api, other_user)
        assert response.status_code == 201
        body = response.json()
        conversation = Conversation.objects.get()
        assert body["conversation_id"] == f"c{conversation.pk}"
        assert body["type"] == "private"
        assert body["target_id"] == str(other_user.pk)
        assert body["target_name"] == "Bob"
        assert body["last_message"] is None and body["unread_count"] == 0
        assert body["created_at"].endswith("Z")

    def test_one_private_conversation_per_pair(self, user_api, user, other_user):
        first = create_private(user_api, other_user).json()["conversation_id"]
        again = create_private(user_api, other_user)
        assert again.status_code == 200 and again.json()["conversation_id"] == first
        reverse = create_private(client_for(other_user), user)
        assert reverse.status_code == 200 and reverse.json()["conversation_id"] == first
        assert Conversation.objects.count() == 1

    def test_private_with_yourself_is_400(self, user_api, user):
        assert_error(create_private(user_api, user), 400)

    @pytest.mark.parametrize("target_id", ["999999", "abc", "g1"])
    def test_private_with_unknown_user_is_404(self, user_api, target_id):
        assert_error(
            user_api.post("/v1/conversations", {"type": "private", "target_id": target_id}, format="json"), 404
        )

    def test_private_needs_target(self, user_api):
        assert (
            "target_id"
            in assert_error(user_api.post("/v1/conversations", {"type": "private"}, format="json"), 400)["fields"]
        )

    def test_group_conversation(self, user_api, user, other_user, stranger):
        body = {"type": "group", "name": "Project Team", "members": [str(other_user.pk), str(stranger.pk)]}
        response = user_api.post("/v1/conversations", body, format="json")
        assert response.status_code == 201
        data = response.json()
        group = Group.objects.get()
        assert data["type"] == "group" and data["target_id"] == f"g{group.pk}" and data["target_name"] == "Project Team"
        roles = dict(Membership.objects.filter(conversation=group.conversation).values_list("user_id", "role"))
        assert roles == {user.pk: "owner", other_user.pk: "member", stranger.pk: "member"}

    def test_group_with_unknown_member_creates_nothing(self, user_api, other_user):
        body = {"type": "group", "name": "Team", "members": [str(other_user.pk), "999999"]}
        assert "members" in assert_error(user_api.post("/v1/conversations", body, format="json"), 400)["fields"]
        assert not Conversation.objects.exists() and not Group.objects.exists()

    def test_group_size_limit(self, user_api, settings, db):
        settings.GROUP_MAX_MEMBERS = 3
        members = [str(make_user(f"m{i}").pk) for i in range(3)]
        body = {"type": "group", "name": "Team", "members": members}
        assert_error(user_api.post("/v1/conversations", body, format="json"), 400)
        body["members"] = members[:2]
        assert user_api.post("/v1/conversations", body, format="json").status_code == 201

    def test_group_needs_a_name(self, user_api, other_user):
        body = {"type": "group", "name": "  ", "members": [str(other_user.pk)]}
        assert "name" in assert_error(user_api.post("/v1/conversations", body, format="json"), 400)["fields"]

    def test_unknown_type(self, user_api, other_user):
        assert_error(user_api.post("/v1/conversations", {"type": "channel"}, format="json"), 400)


class TestList:
    def test_most_recent_activity_first_with_last_message_and_unread(self, user_api, user, other_user, stranger):
        older = private_chat(user, other_user)
        newer = private_chat(user, stranger)
        send(other_user, older, "first")
        send(stranger, newer, "second")
        send(stranger, newer, "third")
        send(user, newer, "mine")  # one's own messages are never unread
        send(other_user, older, "latest")
        body = user_api.get("/v1/conversations").json()
        assert body["total"] == 2
        assert [c["conversation_id"] for c in body["conversations"]] == [f"c{older.pk}", f"c{newer.pk}"]
        first = body["conversations"][0]
        assert first["last_message"]["content"] == "latest"
        assert first["last_message"]["sender_id"] == str(other_user.pk)
        assert first["last_message"]["sender_name"] == "Bob"
        assert first["unread_count"] == 2
        assert body["conversations"][1]["unread_count"] == 2

    def test_target_name_is_remark_then_nickname(self, user_api, user, other_user):
        private_chat(user, other_user)
        assert user_api.get("/v1/conversations").json()["conversations"][0]["target_name"] == "Bob"
        Contact.objects.create(owner=user, user=other_user, remark="Bobby B")
        assert user_api.get("/v1/conversations").json()["conversations"][0]["target_name"] == "Bobby B"

    def test_type_filter(self, user_api, user, other_user):
        private_chat(user, other_user)
        group_of(user, other_user)
        assert user_api.get("/v1/conversations", {"type": "private"}).json()["total"] == 1
        groups = user_api.get("/v1/conversations", {"type": "group"}).json()
        assert groups["total"] == 1 and groups["conversations"][0]["type"] == "group"
        assert user_api.get("/v1/conversations", {"type": "all"}).json()["total"] == 2
        assert_error(user_api.get("/v1/conversations", {"type": "channels"}), 400)

    def test_pagination(self, user_api, user):
        for i in range(25):
            private_chat(user, make_user(f"p{i:02d}"))
        page = user_api.get("/v1/conversations").json()
        assert page["total"] == 25 and len(page["conversations"]) == 20
        rest = user_api.get("/v1/conversations", {"offset": 20}).json()
        assert rest["total"] == 25 and len(rest["conversations"]) == 5
        beyond = user_api.get("/v1/conversations", {"offset": 40}).json()
        assert beyond == {"total": 25, "conversations": []}

    def test_unread_never_negative_and_excludes_removed(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(other_user, conversation)
        send(other_user, conversation)
        Message.objects.filter(pk=message.pk).update(status=Message.Status.REMOVED)
        assert user_api.get("/v1/conversations").json()["conversations"][0]["unread_count"] == 1

    @pytest.mark.parametrize("rows", [1, 50])
    def test_constant_queries(self, user_api, user, rows, django_assert_max_num_queries):
        for i in range(rows):
            peer = make_user(f"q{i:02d}")
            conversation = private_chat(user, peer)
            send(peer, conversation, "hi")
            Contact.objects.create(owner=user, user=peer, remark=f"R{i}")
        group = group_of(user, peer)
        send(peer, group.conversation)
        with django_assert_max_num_queries(2):  # auth + one query for the page, its total included
            body = user_api.get("/v1/conversations", {"limit": 100}).json()
        assert len(body["conversations"]) == rows + 1

    def test_get_one(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        send(other_user, conversation, "hey")
        body = user_api.get(f"/v1/conversations/c{conversation.pk}").json()
        assert body["conversation_id"] == f"c{conversation.pk}" and body["unread_count"] == 1
        assert body["last_message"]["content"] == "hey"

    @pytest.mark.parametrize("path", ["c999999", "12", "cabc", "c" + "9" * 30])
    def test_get_unknown_is_404(self, user_api, path):
        assert_error(user_api.get(f"/v1/conversations/{path}"), 404)

    def test_stranger_gets_404_everywhere(self, user, other_user, stranger):
        conversation = private_chat(user, other_user)
        message = send(user, conversation)
        client = client_for(stranger)
        assert_error(client.get(f"/v1/conversations/c{conversation.pk}"), 404)
        assert_error(history(client, conversation), 404)
        assert_error(post_message(client, conversation, content="intruding"), 404)
        body = {"message_id": f"m{message.pk}"}
        assert_error(client.post(f"/v1/conversations/c{conversation.pk}/read", body, format="json"), 404)
        assert client.get("/v1/conversations").json()["total"] == 0
        assert Message.objects.count() == 1


class TestSend:
    @pytest.mark.parametrize(
        "body", [{}, {"content": ""}, {"type": "image", "content": "m1"}, {"content": "x" * 10_001}]
    )
    def test_a_stranger_gets_404_whatever_the_body(self, user, other_user, stranger, body):
        conversation = private_chat(user, other_user)
        assert_error(post_message(client_for(stranger), conversation, **body), 404)
        assert not Message.objects.exists()

    def test_send_text(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        response = post_message(user_api, conversation, content="Hello world!", temp_id="client-temp-id-123")
        assert response.status_code == 201
        body = response.json()
        message = Message.objects.get()
        assert body == {
            "message_id": f"m{message.pk}",
            "conversation_id": f"c{conversation.pk}",
            "sender_id": str(user.pk),
            "sender_name": "Alice",
            "content": "Hello world!",
            "type": "text",
            "caption": None,
            "media": None,
            "call": None,
            "status": "sent",
            "created_at": body["created_at"],
            "updated_at": None,
            "edited_at": None,
            "removed_by": None,
            "reply_to": None,
            "mentions": [],
            "mentions_all": False,
            "forwarded_from": None,
            "reactions": [],
            "temp_id": "client-temp-id-123",
        }
        assert message.seq == 1

    def test_type_defaults_to_text(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        response = user_api.post(f"/v1/conversations/c{conversation.pk}/messages", {"content": "hi"}, format="json")
        assert response.status_code == 201 and response.json()["type"] == "text"

    def test_temp_id_is_idempotent(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        first = post_message(user_api, conversation, content="once", temp_id="t-1")
        again = post_message(user_api, conversation, content="once", temp_id="t-1")
        assert first.status_code == 201 and again.status_code == 200
        assert again.json()["message_id"] == first.json()["message_id"]
        assert Message.objects.count() == 1
        assert len(events_of(other_user, "new_message")) == 1

    def test_same_temp_id_from_another_sender_is_another_message(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        post_message(user_api, conversation, content="a", temp_id="t-1")
        assert post_message(client_for(other_user), conversation, content="b", temp_id="t-1").status_code == 201
        assert Message.objects.count() == 2

    @pytest.mark.parametrize(
        "body",
        [
            {"content": ""},
            {"content": "   \n"},
            {"content": "x" * 10_001},
            {"content": "hi", "type": "sticker"},
            {"content": "hi", "type": "call"},
            {"type": "text"},
            {"content": 12},
            {"content": "hi", "temp_id": "t" * 65},
        ],
    )
    def test_invalid_bodies(self, user_api, user, other_user, body):
        conversation = private_chat(user, other_user)
        assert_error(user_api.post(f"/v1/conversations/c{conversation.pk}/messages", body, format="json"), 400)
        assert not Message.objects.exists()

    def test_longest_text(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        assert post_message(user_api, conversation, content="x" * 10_000).status_code == 201

    def test_new_message_event_reaches_every_member_with_temp_id_for_sender(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        message_id = post_message(user_api, conversation, content="hey", temp_id="t-9").json()["message_id"]
        theirs = events_of(other_user, "new_message")
        mine = events_of(user, "new_message")
        assert [e["data"]["message_id"] for e in theirs] == [message_id]
        assert "temp_id" not in theirs[0]["data"]
        assert mine[0]["data"]["temp_id"] == "t-9"
        rest = {k: v for k, v in mine[0]["data"].items() if k != "temp_id"}
        assert rest == theirs[0]["data"]
        # The event carries what the REST API returns for the message.
        from_history = history(user_api, conversation).json()["messages"][0]
        assert theirs[0]["data"] == {**from_history, "status": "sent"}

    def test_group_message_reaches_all_members(self, user, other_user, stranger):
        group = group_of(user, other_user)
        response = post_message(client_for(other_user), group.conversation, content="to all")
        assert response.status_code == 201
        for member in (user, other_user):
            assert events_of(member, "new_message")[-1]["data"]["content"] == "to all"
        assert events_of(stranger) == []


class TestCallRecord:
    @transaction.atomic
    def record(self, caller, conversation):
        message = message_store_call(
            caller=caller,
            conversation_id=conversation.pk,
            call_id="call7",
            call_type="audio",
            status="ended",
            duration=42,
        )
        events.record(new_message_event(message))
        return message

    def test_stored_and_sent_like_a_message(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        send(other_user, conversation, "call me")
        message = self.record(user, conversation)
        assert message.seq == 2 and message.sender_id == user.pk
        call = {"call_id": "call7", "type": "audio", "status": "ended", "duration": 42}
        newest, older = history(user_api, conversation).json()["messages"]
        assert newest["type"] == "call" and newest["content"] == "call7" and newest["call"] == call
        assert older["call"] is None
        assert user_api.get(f"/v1/conversations/c{conversation.pk}").json()["last_message"]["type"] == "call"
        for member in (user, other_user):
            assert events_of(member, "new_message")[-1]["data"] == {**newest, "status": "sent"}

    def test_only_in_a_conversation_of_the_caller(self, user, other_user, stranger):
        from rest_framework.exceptions import NotFound

        with pytest.raises(NotFound):
            self.record(stranger, private_chat(user, other_user))
        assert not Message.objects.exists()


class TestHistory:
    @pytest.fixture
    def conversation(self, user, other_user):
        conversation = private_chat(user, other_user)
        for i in range(1, 8):
            send(user if i % 2 else other_user, conversation, f"msg {i}")
        return conversation

    def ids(self, response):
        return [m["content"] for m in response.json()["messages"]]

    def test_newest_first_with_limit(self, user_api, conversation):
        response = history(user_api, conversation, limit=3)
        assert self.ids(response) == ["msg 7", "msg 6", "msg 5"]
        assert response.json()["has_more"] is True
        assert response.json()["conversation_id"] == f"c{conversation.pk}"

    def test_before(self, user_api, conversation):
        anchor = Message.objects.get(content="msg 5")
        response = history(user_api, conversation, before=f"m{anchor.pk}", limit=3)
        assert self.ids(response) == ["msg 4", "msg 3", "msg 2"]
        assert response.json()["has_more"] is True
        last = history(user_api, conversation, before=f"m{Message.objects.get(content='msg 2').pk}", limit=3)
        assert self.ids(last) == ["msg 1"] and last.json()["has_more"] is False

    def test_after_lists_the_just_newer_newest_first(self, user_api, conversation):
        anchor = Message.objects.get(content="msg 2")
        response = history(user_api, conversation, after=f"m{anchor.pk}", limit=3)
        assert self.ids(response) == ["msg 5", "msg 4", "msg 3"]
        assert response.json()["has_more"] is True
        tail = history(user_api, conversation, after=f"m{Message.objects.get(content='msg 5').pk}", limit=3)
        assert self.ids(tail) == ["msg 7", "msg 6"] and tail.json()["has_more"] is False

    def test_between_before_and_after(self, user_api, conversation):
        after = Message.objects.get(content="msg 2").pk
        before = Message.objects.get(content="msg 6").pk
        response = history(user_api, conversation, after=f"m{after}", before=f"m{before}")
        assert self.ids(response) == ["msg 5", "msg 4", "msg 3"]

    def test_default_limit_is_50_and_clamped_to_100(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        for i in range(120):
            send(user, conversation, f"n{i}")
        assert len(history(user_api, conversation).json()["messages"]) == 50
        assert len(history(user_api, conversation, limit=1000).json()["messages"]) == 100

    @pytest.mark.parametrize("params", [{"before": "m999999"}, {"after": "x1"}, {"limit": "-1"}, {"limit": "ten"}])
    def test_bad_parameters(self, user_api, conversation, params):
        assert_error(history(user_api, conversation, **params), 400)

    def test_message_of_another_conversation_is_400(self, user_api, user, conversation, stranger):
        elsewhere = send(user, private_chat(user, stranger), "other")
        assert_error(history(user_api, conversation, before=f"m{elsewhere.pk}"), 400)

    def test_read_status(self, user_api, user, other_user, conversation):
        mine = list(Message.objects.filter(sender=user).order_by("seq"))
        conversation_mark_read(user=other_user, conversation_id=conversation.pk, message_id=mine[1].pk)
        statuses = {m["content"]: m["status"] for m in history(user_api, conversation).json()["messages"]}
        assert statuses["msg 1"] == statuses["msg 3"] == "read"
        assert statuses["msg 5"] == statuses["msg 7"] == "sent"

    def test_group_read_needs_every_other_member(self, user, other_user, stranger):
        group = group_of(user, other_user, stranger)
        message = send(user, group.conversation, "to the group")
        client = client_for(user)
        conversation_mark_read(user=other_user, conversation_id=group.conversation.pk, message_id=message.pk)
        assert history(client, group.conversation).json()["messages"][0]["status"] == "sent"
        conversation_mark_read(user=stranger, conversation_id=group.conversation.pk, message_id=message.pk)
        assert history(client, group.conversation).json()["messages"][0]["status"] == "read"

    @pytest.mark.parametrize("rows", [1, 50])
    def test_constant_queries(self, user_api, user, other_user, rows, django_assert_max_num_queries):
        conversation = private_chat(user, other_user)
        for i in range(rows + 1):
            send(other_user if i % 2 else user, conversation, f"n{i}")
        newest = Message.objects.order_by("-seq").first()
        # auth, membership with the read pointers, the page with its senders, replied-to originals
        # and reactions (anchor a subquery); a page with media messages adds one query for all
        # their uploads
        with django_assert_max_num_queries(3):
            body = history(user_api, conversation, before=f"m{newest.pk}", limit=100).json()
        assert len(body["messages"]) == rows


class TestMarkRead:
    def test_rest_mark_read(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        first = send(other_user, conversation, "1")
        send(other_user, conversation, "2")
        path = f"/v1/conversations/c{conversation.pk}/read"
        response = user_api.post(path, {"message_id": f"m{first.pk}"}, format="json")
        assert response.status_code == 200
        assert response.json() == {
            "conversation_id": f"c{conversation.pk}",
            "last_read_message_id": f"m{first.pk}",
            "unread_count": 1,
        }
        receipts = events_of(other_user, "message_status")
        assert [(e["data"]["message_id"], e["data"]["status"]) for e in receipts] == [(f"m{first.pk}", "read")]

    @pytest.mark.parametrize("body", [{}, {"message_id": "x"}, {"message_id": "m999999"}])
    def test_a_stranger_gets_404_whatever_the_body(self, user, other_user, stranger, body):
        conversation = private_chat(user, other_user)
        response = client_for(stranger).post(f"/v1/conversations/c{conversation.pk}/read", body, format="json")
        assert_error(response, 404)

    def test_pointer_never_moves_back(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        first, second = send(other_user, conversation), send(other_user, conversation)
        path = f"/v1/conversations/c{conversation.pk}/read"
        user_api.post(path, {"message_id": f"m{second.pk}"}, format="json")
        response = user_api.post(path, {"message_id": f"m{first.pk}"}, format="json")
        assert response.json()["last_read_message_id"] == f"m{second.pk}"
        assert response.json()["unread_count"] == 0
        assert len(events_of(other_user, "message_status")) == 2

    def test_unknown_message_is_400(self, user_api, user, other_user):
        conversation = private_chat(user, other_user)
        path = f"/v1/conversations/c{conversation.pk}/read"
        assert_error(user_api.post(path, {"message_id": "m424242"}, format="json"), 400)
        assert_error(user_api.post(path, {"message_id": "nope"}, format="json"), 400)
