"""Account deletion: DELETE /v1/user/me and the service behind it (and behind delete_user)."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from social_django.models import UserSocialAuth

from accounts.models import PasswordResetCode, PasswordResetGuess, User
from chat.models import Conversation, Membership
from contacts.models import Contact
from groups.models import Group
from groups.services import group_invite, group_member_set_role
from presence.services import users_reset_presence
from privacy.services import user_delete
from realtime.models import EventStream, UserEvent
from tests.accounts.test_auth import assert_error
from tests.conftest import PASSWORD, client_for, events_of, group_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


def delete_me(client, body=None):
    return client.delete("/v1/user/me", body, format="json")


class TestDeleteMe:
    def test_with_password_erases_the_account(self, user_api, user, api):
        assert delete_me(user_api, {"password": PASSWORD}).status_code == 204
        user.refresh_from_db()
        assert user.username == f"deleted-{user.pk}" and not user.is_active
        assert_error(user_api.get("/v1/user/me"), 401)
        assert_error(api.post("/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json"), 401)

    def test_wrong_password_is_400(self, user_api, user):
        body = assert_error(delete_me(user_api, {"password": "wrong"}), 400)
        assert "password" in body["fields"]
        assert User.objects.get(pk=user.pk).username == "alice"

    def test_missing_password_is_400(self, user_api, user):
        assert "password" in assert_error(delete_me(user_api), 400)["fields"]
        assert User.objects.get(pk=user.pk).is_active

    def test_oauth_only_account_needs_no_body(self, db):
        oauth_user = make_user("oauthy")
        oauth_user.set_unusable_password()
        oauth_user.save()
        UserSocialAuth.objects.create(user=oauth_user, provider="github", uid="42")
        assert delete_me(client_for(oauth_user)).status_code == 204
        assert not User.objects.get(pk=oauth_user.pk).is_active
        assert not UserSocialAuth.objects.exists()

    def test_unknown_fields_are_400(self, user_api):
        assert_error(delete_me(user_api, {"password": PASSWORD, "reason": "bye"}), 400)

    def test_needs_auth(self, api):
        assert_error(delete_me(api, {"password": PASSWORD}), 401)

    def test_throttled_like_logins(self, user_api, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": "2/minute"}
        for _ in range(2):
            assert_error(delete_me(user_api, {"password": "wrong"}), 400)
        assert_error(delete_me(user_api, {"password": "wrong"}), 429)


class TestTombstone:
    def test_profile_is_anonymous(self, user, settings, tmp_path, django_capture_on_commit_callbacks):
        settings.MEDIA_ROOT = tmp_path
        name = default_storage.save("avatars/alice.png", ContentFile(b"png"))
        User.objects.filter(pk=user.pk).update(avatar=name, status_message="hi", is_staff=True, first_name="Al")
        PasswordResetCode.objects.create(user=user, code_hash="x", expires_at="2030-01-01T00:00:00Z")
        PasswordResetGuess.objects.create(user=user, address="203.0.113.9", created_at=timezone.now())
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        version = user.token_version

        with django_capture_on_commit_callbacks(execute=True):
            user_delete(user=user)

        assert not default_storage.exists(name)
        user.refresh_from_db()
        assert user.username == f"deleted-{user.pk}"
        assert user.nickname == "Deleted user" and user.display_name == "Deleted user"
        assert (user.email, user.avatar, user.status_message, user.first_name) == ("", "", "", "")
        assert not user.has_usable_password()
        assert not (user.is_active or user.is_staff or user.is_superuser or user.is_online)
        assert user.token_version == version + 1
        assert not PasswordResetCode.objects.exists() and not PasswordResetGuess.objects.exists()
        assert not TOTPDevice.objects.exists()

    def test_contacts_both_ways_are_removed(self, user, other_user, stranger):
        Contact.objects.create(owner=user, user=other_user)
        Contact.objects.create(owner=other_user, user=user)
        Contact.objects.create(owner=other_user, user=stranger)
        user_delete(user=user)
        assert list(Contact.objects.values_list("owner_id", "user_id")) == [(other_user.pk, stranger.pk)]

    def test_messages_stay_from_deleted_user(self, user, other_user):
        conversation = private_chat(user, other_user)
        send(user, conversation, "hello bob")
        send(other_user, conversation, "hi alice")

        user_delete(user=user)

        page = client_for(other_user).get(f"/v1/conversations/c{conversation.pk}/messages").json()["messages"]
        assert [(m["sender_name"], m["content"]) for m in page] == [("Bob", "hi alice"), ("Deleted user", "hello bob")]
        item = client_for(other_user).get(f"/v1/conversations/c{conversation.pk}").json()
        assert item["target_name"] == "Deleted user"
        assert not Membership.objects.filter(user=user).exists()

    def test_event_log_is_deleted(self, user, other_user):
        send(other_user, private_chat(user, other_user))
        assert events_of(user)
        user_delete(user=user)
        assert not UserEvent.objects.filter(user=user).exists()
        assert not EventStream.objects.filter(user=user).exists()
        assert events_of(other_user)  # others' logs are theirs

    def test_search_and_profile_no_longer_find_them(self, user, other_user):
        user_delete(user=user)
        client = client_for(other_user)
        assert client.get("/v1/users/search", {"query": "deleted"}).json()["total"] == 0
        assert_error(client.get(f"/v1/users/{user.pk}"), 404)

    def test_can_run_again(self, user, other_user):
        group_of(user, other_user)
        user_delete(user=user)
        user_delete(user=User.objects.get(pk=user.pk))
        assert User.objects.get(pk=user.pk).username == f"deleted-{user.pk}"


class TestGroupsLeft:
    def test_member_leaves_and_others_are_told(self, user, other_user):
        group = group_of(other_user, user)
        user_delete(user=user)
        assert list(Membership.objects.filter(conversation=group.conversation).values_list("user_id", flat=True)) == [
            other_user.pk
        ]
        left = events_of(other_user, "group_update")[-1]["data"]
        assert left["update_type"] == "member_left"
        assert (left["user_id"], left["user_name"]) == (str(user.pk), "Deleted user")

    def test_owner_hands_over_to_the_oldest_admin(self, user, other_user, stranger):
        carol = make_user("carol")
        group = group_of(user, other_user, stranger, carol)
        group_member_set_role(user=user, group_id=group.pk, target_user_id=carol.pk, role="admin")
        group_member_set_role(user=user, group_id=group.pk, target_user_id=stranger.pk, role="admin")

        user_delete(user=user)

        owner = Membership.objects.get(conversation=group.conversation, role="owner")
        assert owner.user_id in (carol.pk, stranger.pk)
        # both were added at once: the tie goes to the earlier membership
        first_admin = (
            Membership.objects.filter(conversation=group.conversation, user__in=[carol, stranger])
            .order_by("joined_at", "pk")
            .first()
        )
        assert owner.user_id == first_admin.user_id
        update = events_of(other_user, "group_update")[-1]["data"]
        assert update["update_type"] == "role_changed"
        assert (update["user_id"], update["role"]) == (str(owner.user_id), "owner")

    def test_owner_without_admins_hands_over_to_the_oldest_member(self, user, other_user, stranger):
        group = group_of(user, other_user)
        group_of(user, stranger)  # another group, another handover
        group_invite(user=user, group_id=group.pk, user_ids=[str(stranger.pk)])

        user_delete(user=user)

        owners = dict(Membership.objects.filter(role="owner").values_list("conversation__group__pk", "user_id"))
        assert owners[group.pk] == other_user.pk
        assert len(owners) == 2 and stranger.pk in owners.values()

    def test_group_left_empty_is_dissolved(self, user):
        group = group_of(user)
        user_delete(user=user)
        assert not Group.objects.filter(pk=group.pk).exists()
        assert not Conversation.objects.filter(pk=group.conversation_id).exists()


class TestResetPresence:
    def test_marks_everyone_offline(self, user, other_user, stranger):
        User.objects.filter(pk__in=[user.pk, other_user.pk]).update(is_online=True)
        assert users_reset_presence() == 2
        assert not User.objects.filter(is_online=True).exists()
        assert User.objects.get(pk=user.pk).last_online is not None
        assert User.objects.get(pk=stranger.pk).last_online is None
