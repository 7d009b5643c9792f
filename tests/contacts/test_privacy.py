"""Privacy settings (contract 16): the routes, the operators' defaults for new accounts, and the
entry points who_can_message, who_can_call and who_can_add_to_groups govern."""

import pytest

from contacts.models import PrivacySettings
from tests.accounts.test_auth import assert_error
from tests.conftest import PASSWORD, client_for, events_of, group_of, private_chat, send

pytestmark = pytest.mark.django_db

CONTRACT_DEFAULTS = {
    "last_seen": "everyone",
    "who_can_message": "everyone",
    "who_can_call": "everyone",
    "who_can_add_to_groups": "everyone",
    "send_read_receipts": True,
    "send_typing": True,
    "notification_preview": "full",
}


def patch(user, **changes):
    return client_for(user).patch("/v1/user/me/settings", changes, format="json")


def add_contact(owner, user):
    assert client_for(owner).post("/v1/contacts", {"user_id": str(user.pk)}, format="json").status_code == 201


class TestRoutes:
    def test_a_new_account_has_the_contract_defaults(self, user_api):
        assert user_api.get("/v1/user/me/settings").json() == CONTRACT_DEFAULTS

    def test_patch_changes_only_what_it_names(self, user):
        response = patch(user, last_seen="nobody", notification_preview="sender")
        assert response.status_code == 200
        assert response.json() == {**CONTRACT_DEFAULTS, "last_seen": "nobody", "notification_preview": "sender"}
        assert client_for(user).get("/v1/user/me/settings").json() == response.json()

    @pytest.mark.parametrize(
        "changes",
        [
            {"colour": "blue"},
            {"last_seen": "friends"},
            {"who_can_message": "nobody"},  # "nobody" is only for last_seen
            {"notification_preview": None},
            {"send_typing": "sometimes"},
        ],
    )
    def test_unknown_keys_or_values_are_400(self, user, changes):
        body = assert_error(patch(user, **changes), 400)
        assert set(body["fields"]) == set(changes)
        assert client_for(user).get("/v1/user/me/settings").json() == CONTRACT_DEFAULTS

    def test_operators_set_the_defaults_for_new_accounts_only(self, user, settings):
        settings.PRIVACY_DEFAULTS = {**CONTRACT_DEFAULTS, "last_seen": "contacts", "send_read_receipts": False}
        body = {"username": "newbie", "password": PASSWORD, "email": "newbie@example.com"}
        token = client_for().post("/v1/auth/register", body, format="json").json()["token"]
        newbie = client_for()
        newbie.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert newbie.get("/v1/user/me/settings").json() == {
            **CONTRACT_DEFAULTS,
            "last_seen": "contacts",
            "send_read_receipts": False,
        }
        assert client_for(user).get("/v1/user/me/settings").json() == CONTRACT_DEFAULTS

    def test_an_account_without_a_row_has_the_contract_defaults(self, user):
        PrivacySettings.objects.filter(user=user).delete()
        assert client_for(user).get("/v1/user/me/settings").json() == CONTRACT_DEFAULTS
        assert patch(user, send_typing=False).json()["send_typing"] is False


class TestWhoCanMessage:
    def test_contacts_only_refuses_others_opening_and_sending(self, user, other_user):
        conversation = private_chat(user, other_user)
        patch(other_user, who_can_message="contacts")
        url = f"/v1/conversations/c{conversation.pk}/messages"
        assert (
            "does not accept"
            in assert_error(client_for(user).post(url, {"content": "hi"}, format="json"), 403)["details"]
        )
        # The setting's owner still writes to anyone.
        assert client_for(other_user).post(url, {"content": "hi"}, format="json").status_code == 201
        add_contact(other_user, user)  # "contacts" are the setting owner's own
        assert client_for(user).post(url, {"content": "hi"}, format="json").status_code == 201

    def test_opening_a_new_conversation(self, user, other_user):
        patch(other_user, who_can_message="contacts")
        body = {"type": "private", "target_id": str(other_user.pk)}
        assert_error(client_for(user).post("/v1/conversations", body, format="json"), 403)
        add_contact(user, other_user)  # the caller's own contact list does not count
        assert_error(client_for(user).post("/v1/conversations", body, format="json"), 403)
        patch(other_user, who_can_message="everyone")
        assert client_for(user).post("/v1/conversations", body, format="json").status_code == 201


class TestWhoCanCall:
    def test_contacts_only_refuses_others_calls(self, user, other_user):
        patch(other_user, who_can_call="contacts", who_can_message="contacts")
        body = {"target_id": str(other_user.pk), "type": "video", "offer_sdp": "v=0"}
        assert_error(client_for(user).post("/v1/calls", body, format="json"), 403)
        assert events_of(other_user, "incoming_call") == []
        add_contact(other_user, user)
        assert client_for(user).post("/v1/calls", body, format="json").status_code == 201

    def test_a_call_needs_no_message_permission(self, user, other_user):
        patch(other_user, who_can_message="contacts")
        body = {"target_id": str(other_user.pk), "type": "audio", "offer_sdp": "v=0"}
        assert client_for(user).post("/v1/calls", body, format="json").status_code == 201


class TestWhoCanAddToGroups:
    def test_contacts_only_skips_others_invites(self, user, other_user, stranger):
        group = group_of(user, stranger)
        patch(other_user, who_can_add_to_groups="contacts")
        invite = {"user_ids": [str(other_user.pk)]}
        response = client_for(user).post(f"/v1/groups/g{group.pk}/members", invite, format="json")
        assert response.json()["invited_users"] == []
        add_contact(other_user, user)
        response = client_for(user).post(f"/v1/groups/g{group.pk}/members", invite, format="json")
        assert response.json()["invited_users"] == [str(other_user.pk)]


class TestSendReadReceipts:
    def read(self, reader, conversation, message):
        url = f"/v1/conversations/c{conversation.pk}/read"
        return client_for(reader).post(url, {"message_id": f"m{message.pk}"}, format="json")

    def statuses(self, viewer, conversation):
        messages = client_for(viewer).get(f"/v1/conversations/c{conversation.pk}/messages").json()["messages"]
        return [m["status"] for m in messages]

    def test_off_keeps_private_messages_unread_and_sends_no_read_receipt(self, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "one")
        patch(other_user, send_read_receipts=False)
        response = self.read(other_user, conversation, message)
        assert response.json()["unread_count"] == 0  # the reader's own read state still moves
        # What was read was delivered (contract 19), but it does not show as read.
        assert self.statuses(user, conversation) == ["delivered"]
        assert [e["data"]["status"] for e in events_of(user, "message_status")] == ["delivered"]
        patch(other_user, send_read_receipts=True)
        later = send(user, conversation, "two")
        self.read(other_user, conversation, later)
        assert self.statuses(user, conversation) == ["read", "read"]
        assert [(e["data"]["message_id"], e["data"]["status"]) for e in events_of(user, "message_status")][1:] == [
            (f"m{message.pk}", "read"),
            (f"m{later.pk}", "read"),
        ]

    def test_groups_are_unaffected(self, user, other_user):
        group = group_of(user, other_user)
        message = send(user, group.conversation, "hello")
        patch(other_user, send_read_receipts=False)
        self.read(other_user, group.conversation, message)
        assert self.statuses(user, group.conversation) == ["read"]
