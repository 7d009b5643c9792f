import pytest
from django.core.files.storage import default_storage
from django.db import transaction

from chat import services as chat_services
from chat.models import Message
from chat.services import conversation_mark_read, message_remove
from media.models import Media
from tests.conftest import client_for, events_of, group_of, is_postgres, make_user, private_chat, send
from tests.media.conftest import post_upload
from tests.media.files import image_bytes

pytestmark = pytest.mark.django_db


class TestMessageRemove:
    def test_stays_in_history_as_removed_without_content(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "buy cheap pills", caption="")
        later = send(other_user, conversation, "what?")

        assert message_remove(message=message) is True

        stored = Message.objects.get(pk=message.pk)
        assert (stored.status, stored.content, stored.caption) == ("removed", "", "")
        assert stored.updated_at is not None
        for viewer in (user, other_user):
            page = client_for(viewer).get(f"/v1/conversations/c{conversation.pk}/messages").json()["messages"]
            assert [m["message_id"] for m in page] == [f"m{later.pk}", f"m{message.pk}"]
            removed = page[1]
            assert removed["status"] == "removed" and removed["content"] == "" and removed["caption"] is None
            assert removed["updated_at"] is not None

    def test_every_member_is_told(self, user, other_user):
        carol = make_user("carol")
        group = group_of(user, other_user, carol)
        message = send(other_user, group.conversation, "offensive")

        message_remove(message=message)

        expected = {
            "message_id": f"m{message.pk}",
            "conversation_id": f"c{group.conversation_id}",
            "status": "removed",
        }
        for member in (user, other_user, carol):
            status = events_of(member, "message_status")
            assert len(status) == 1
            assert {k: status[0]["data"][k] for k in expected} == expected
            assert status[0]["data"]["updated_at"].endswith("Z")

    def test_removing_twice_changes_nothing(self, user, other_user):
        message = send(user, private_chat(user, other_user))
        assert message_remove(message=message) is True
        assert message_remove(message=Message.objects.get(pk=message.pk)) is False
        assert len(events_of(other_user, "message_status")) == 1

    def test_rolled_back_removal_tells_nobody(self, user, other_user, django_capture_on_commit_callbacks):
        message = send(user, private_chat(user, other_user))
        with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
            message_remove(message=message)
            raise RuntimeError
        assert callbacks == []
        assert Message.objects.get(pk=message.pk).status == "sent"
        assert events_of(other_user, "message_status") == []

    def test_last_message_of_the_list_shows_it_removed(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "secret")
        message_remove(message=message)
        item = client_for(other_user).get(f"/v1/conversations/c{conversation.pk}").json()
        assert item["last_message"]["content"] == "" and item["unread_count"] == 0

    def test_a_removed_media_message_loses_its_upload(self, user, other_user, django_capture_on_commit_callbacks):
        conversation = private_chat(user, other_user)
        photo = post_upload(client_for(user), image_bytes("JPEG"), "image").json()
        message = send(user, conversation, photo["media_id"], type="image")
        stored_file = Media.objects.get().file
        with django_capture_on_commit_callbacks(execute=True):
            message_remove(message=message)
        assert not Media.objects.exists() and not default_storage.exists(stored_file)
        shown = client_for(other_user).get(f"/v1/conversations/c{conversation.pk}/messages").json()["messages"][0]
        assert (shown["status"], shown["content"], shown["media"]) == ("removed", "", None)

    def test_an_upload_other_messages_carry_stays(self, user, other_user, django_capture_on_commit_callbacks):
        """The same media_id may be sent more than once: removing one message keeps it for the rest."""
        photo = post_upload(client_for(user), image_bytes("JPEG"), "image").json()
        first = send(user, private_chat(user, other_user), photo["media_id"], type="image")
        group = group_of(user, other_user)
        again = send(user, group.conversation, photo["media_id"], type="image")
        stored_file = Media.objects.get().file
        with django_capture_on_commit_callbacks(execute=True):
            assert message_remove(message=first) is True
        shown = client_for(other_user).get(f"/v1/conversations/c{group.conversation_id}/messages").json()["messages"]
        assert shown[0]["message_id"] == f"m{again.pk}"
        assert client_for().get(shown[0]["media"]["url"]).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            message_remove(message=again)  # the last one carrying it: now the upload goes
        assert not Media.objects.exists() and not default_storage.exists(stored_file)


class TestReadReceipts:
    def read(self, reader, conversation, message):
        conversation_mark_read(user=reader, conversation_id=conversation.pk, message_id=message.pk)

    def receipts(self, sender):
        return [event["data"]["message_id"] for event in events_of(sender, "message_status")]

    def test_only_when_every_other_member_has_read(self, user, other_user):
        carol = make_user("carol")
        conversation = group_of(user, other_user, carol).conversation
        first, second = send(user, conversation, "one"), send(user, conversation, "two")
        self.read(other_user, conversation, second)
        assert self.receipts(user) == []  # carol has not read
        self.read(carol, conversation, first)
        assert self.receipts(user) == [f"m{first.pk}"]
        self.read(carol, conversation, second)
        assert self.receipts(user) == [f"m{first.pk}", f"m{second.pk}"]

    def test_the_senders_own_pointer_does_not_hold_them_back(self, user, other_user):
        # The sender has read nothing (the lowest pointer): the second lowest decides.
        carol = make_user("carol")
        conversation = group_of(user, other_user, carol).conversation
        mine = send(user, conversation, "mine")
        self.read(other_user, conversation, mine)
        self.read(carol, conversation, mine)
        assert self.receipts(user) == [f"m{mine.pk}"]

    def test_a_long_backlog_sends_the_newest_few_per_sender_oldest_first(
        self, user, other_user, monkeypatch, django_assert_max_num_queries
    ):
        monkeypatch.setattr(chat_services, "MAX_READ_RECEIPTS_PER_SENDER", 2)
        carol = make_user("carol")
        conversation = group_of(user, other_user, carol).conversation
        from_user = [send(user, conversation, f"u{n}") for n in range(5)]
        from_other = [send(other_user, conversation, f"o{n}") for n in range(4)]
        # One more since a read moves the delivered pointer too; SQLite stores the events in more
        # statements than PostgreSQL's one (realtime.events._store_generic).
        with django_assert_max_num_queries(13 if is_postgres() else 14):
            self.read(carol, conversation, from_other[-1])
        assert self.receipts(user) == []  # other_user has not read the user's messages
        self.read(other_user, conversation, from_other[-1])
        assert self.receipts(user) == [f"m{m.pk}" for m in from_user[-2:]]
        self.read(user, conversation, from_other[-1])
        assert self.receipts(other_user) == [f"m{m.pk}" for m in from_other[-2:]]
