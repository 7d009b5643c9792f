"""Moderation services: each action does its work and writes one audit entry, or neither."""

import pytest

from accounts.models import User
from chat.models import Message
from moderation import services
from moderation.models import AuditEntry, Report
from moderation.services import ModerationError
from privacy import services as privacy_services
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for, events_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(db):
    return services.moderator_grant(actor="cli:root", user=make_user("mod"))


def only_entry():
    entry = AuditEntry.objects.get()
    return entry.actor, entry.actor_name, entry.action, entry.target_type, entry.target_id, entry.reason


class TestBan:
    def test_ban_revokes_hides_and_logs(self, moderator, user, other_user):
        AuditEntry.objects.all().delete()
        client = client_for(user)
        services.user_ban(actor=moderator, user=user, reason="spam links")

        user.refresh_from_db()
        assert user.is_banned and user.ban_reason == "spam links" and user.banned_at
        assert_error(client.get("/v1/user/me"), 401)
        assert client_for(other_user).get("/v1/users/search", {"query": "alice"}).json()["total"] == 0
        assert only_entry() == (moderator, "mod", "user_ban", "user", user.pk, "spam links")

    def test_command_actor(self, user):
        services.user_ban(actor="cli:ops", user=user, reason="spam")
        assert only_entry()[:3] == (None, "cli:ops", "user_ban")

    def test_reason_is_required(self, user):
        with pytest.raises(ModerationError, match="reason"):
            services.user_ban(actor="cli:ops", user=user, reason="  ")
        assert not User.objects.get(pk=user.pk).is_banned and not AuditEntry.objects.exists()

    def test_twice_is_an_error(self, user):
        services.user_ban(actor="cli:ops", user=user, reason="spam")
        with pytest.raises(ModerationError, match="already banned"):
            services.user_ban(actor="cli:ops", user=user, reason="spam")
        assert AuditEntry.objects.count() == 1

    def test_moderators_cannot_ban_themselves_or_staff(self, moderator):
        other_moderator = services.moderator_grant(actor="cli:root", user=make_user("mod2"))
        for target in (moderator, other_moderator):
            with pytest.raises(ModerationError):
                services.user_ban(actor=moderator, user=target, reason="power trip")
        assert not User.objects.filter(is_banned=True).exists()

    def test_superusers_can_ban_staff(self, moderator):
        root = make_user("root", is_superuser=True, is_staff=True)
        services.user_ban(actor=root, user=moderator, reason="abuse of tools")
        assert User.objects.get(pk=moderator.pk).is_banned

    def test_unban(self, moderator, user, api):
        services.user_ban(actor=moderator, user=user, reason="spam")
        services.user_unban(actor=moderator, user=user, reason="appeal accepted")
        user.refresh_from_db()
        assert not user.is_banned and user.banned_at is None
        entry = AuditEntry.objects.latest("pk")
        assert (entry.action, entry.reason) == ("user_unban", "appeal accepted")
        login = api.post("/v1/auth/login", {"username": "alice", "password": "Sup3r-secret!"}, format="json")
        assert login.status_code == 200

    def test_unban_of_a_user_not_banned_is_an_error(self, user):
        with pytest.raises(ModerationError, match="not banned"):
            services.user_unban(actor="cli:ops", user=user)


class TestMessageRemove:
    def test_removes_and_logs(self, moderator, user, other_user):
        AuditEntry.objects.all().delete()
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "nasty")
        services.message_takedown(actor=moderator, message=message, reason="harassment")
        assert Message.objects.get(pk=message.pk).status == "removed"
        assert events_of(other_user, "message_status")[0]["data"]["status"] == "removed"
        assert only_entry() == (moderator, "mod", "message_remove", "message", message.pk, "harassment")
        assert AuditEntry.objects.get().target_repr == f"m{message.pk} by alice in c{conversation.pk}"

    def test_already_removed_is_an_error_and_not_logged_twice(self, user, other_user):
        message = send(user, private_chat(user, other_user))
        services.message_takedown(actor="cli:ops", message=message, reason="spam")
        with pytest.raises(ModerationError, match="already removed"):
            services.message_takedown(actor="cli:ops", message=message, reason="spam")
        assert AuditEntry.objects.count() == 1


class TestReports:
    @pytest.fixture
    def report(self, user, other_user):
        return Report.objects.create(reporter=user, target_type="user", target_id=other_user.pk, reason="spam")

    @pytest.mark.parametrize(("action", "status"), [("report_resolve", "resolved"), ("report_dismiss", "dismissed")])
    def test_handling_records_who_when_and_why(self, moderator, report, action, status):
        AuditEntry.objects.all().delete()
        getattr(services, action)(actor=moderator, report=report, note="checked the history")
        report.refresh_from_db()
        assert (report.status, report.handled_by, report.note) == (status, moderator, "checked the history")
        assert report.handled_at is not None
        assert only_entry() == (moderator, "mod", action, "report", report.pk, "checked the history")

    def test_handled_report_cannot_be_handled_again(self, report):
        services.report_dismiss(actor="cli:ops", report=report, note="fine")
        with pytest.raises(ModerationError, match="already dismissed"):
            services.report_resolve(actor="cli:ops", report=report, note="changed my mind")

    def test_note_is_required(self, report):
        with pytest.raises(ModerationError, match="note"):
            services.report_resolve(actor="cli:ops", report=report, note="")


class TestModerators:
    def test_grant_and_revoke(self, user):
        services.moderator_grant(actor="cli:ops", user=user)
        user = User.objects.get(pk=user.pk)
        assert user.is_staff and not user.is_superuser
        assert user.has_perm("accounts.ban_user") and user.has_perm("chat.remove_message")
        assert not user.has_perm("accounts.change_user") and not user.has_perm("accounts.delete_user")
        services.moderator_revoke(actor="cli:ops", user=user)
        user = User.objects.get(pk=user.pk)
        assert not user.is_staff and not user.has_perm("accounts.ban_user")
        assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
            "moderator_grant",
            "moderator_revoke",
        ]

    def test_banned_user_cannot_become_moderator(self, user):
        services.user_ban(actor="cli:ops", user=user, reason="spam")
        with pytest.raises(ModerationError):
            services.moderator_grant(actor="cli:ops", user=user)


def test_user_delete_is_logged_without_personal_data(user):
    privacy_services.user_delete(actor="cli:ops", user=user, reason="GDPR request 42")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target_repr, entry.reason) == ("user_delete", f"deleted-{user.pk}", "GDPR request 42")


def test_cli_actor_names_the_os_user(monkeypatch):
    monkeypatch.setenv("LOGNAME", "ops")
    assert services.cli_actor() == "cli:ops"
