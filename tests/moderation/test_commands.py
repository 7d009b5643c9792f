"""The operators' commands: each calls the same service as the admin or the API."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from social_django.models import UserSocialAuth

from accounts.models import User
from calls.models import Call
from chat.models import Message
from contacts.models import Contact
from media.models import Media
from moderation import services
from moderation.models import AuditEntry, Report
from tests.conftest import client_for, group_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _os_user(monkeypatch):
    monkeypatch.setenv("LOGNAME", "ops")


class TestBanUser:
    def test_bans_like_the_admin_and_logs_the_os_user(self, user):
        client = client_for(user)
        assert "Banned alice" in run("ban_user", "ALICE", reason="spam")
        user.refresh_from_db()
        assert user.is_banned and user.ban_reason == "spam"
        assert client.get("/v1/user/me").status_code == 401
        entry = AuditEntry.objects.get()
        assert (entry.actor, entry.actor_name, entry.action, entry.reason) == (None, "cli:ops", "user_ban", "spam")

    def test_reason_is_required(self, user):
        with pytest.raises(CommandError, match="reason"):
            run("ban_user", "alice")

    def test_unknown_user_fails(self, db):
        with pytest.raises(CommandError, match="No user named 'nobody'"):
            run("ban_user", "nobody", reason="spam")

    def test_already_banned_fails(self, user):
        run("ban_user", "alice", reason="spam")
        with pytest.raises(CommandError, match="already banned"):
            run("ban_user", "alice", reason="spam")

    def test_unban(self, user):
        run("ban_user", "alice", reason="spam")
        assert "Unbanned alice" in run("unban_user", "alice", reason="appeal")
        assert not User.objects.get(pk=user.pk).is_banned
        with pytest.raises(CommandError, match="not banned"):
            run("unban_user", "alice")


class TestMakeModerator:
    def test_grant_and_remove(self, user):
        assert "alice is now a moderator" in run("make_moderator", "alice")
        user = User.objects.get(pk=user.pk)
        assert user.is_staff and not user.is_superuser and user.groups.filter(name="Moderators").exists()
        run("make_moderator", "alice", remove=True)
        assert not User.objects.get(pk=user.pk).is_staff


class TestImstats:
    @pytest.fixture
    def activity(self, user, other_user):
        conversation = private_chat(user, other_user)
        send(user, conversation, "today")
        old = send(other_user, conversation, "last month")
        Message.objects.filter(pk=old.pk).update(created_at=old.created_at.replace(year=2020))
        User.objects.filter(pk=user.pk).update(is_online=True)
        Media.objects.create(owner=user, kind="file", file="media/a.bin", content_type="text/plain", size=1500)
        Media.objects.create(owner=other_user, kind="file", file="media/b.bin", content_type="text/plain", size=500)
        for created in (timezone.now(), timezone.now() - timedelta(days=2)):
            Call.objects.create(
                caller=user, callee=other_user, conversation=conversation, type="audio", status="missed",
                offer_sdp="v=0", ring_deadline=created, created_at=created,
            )  # fmt: skip

    def test_json(self, activity):
        figures = json.loads(run("imstats", json=True))
        assert figures == {
            "users": 2,
            "online_now": 1,
            "conversations": 1,
            "messages_last_day": 1,
            "messages_last_week": 1,
            "open_reports": 0,
            "media_bytes_stored": 2000,
            "calls_today": 1,
        }

    def test_table(self, activity):
        lines = run("imstats").splitlines()
        assert lines[0].split() == ["Users", "2"]
        assert "Messages in the last week" in lines[4] and lines[4].endswith(" 1")


class TestExportUser:
    @pytest.fixture
    def data(self, user, other_user):
        Contact.objects.create(owner=user, user=other_user, remark="colleague")
        Contact.objects.create(owner=other_user, user=user)  # bob's address book: not alice's data
        UserSocialAuth.objects.create(user=user, provider="github", uid="777")
        conversation = private_chat(user, other_user)
        send(user, conversation, "my words")
        send(other_user, conversation, "bob's words")
        group_of(other_user, user, name="Choir")
        Report.objects.create(reporter=user, target_type="user", target_id=other_user.pk, reason="spam")
        Media.objects.create(owner=user, kind="image", file="media/me.png", content_type="image/png", size=10)
        Media.objects.create(owner=other_user, kind="image", file="media/bob.png", content_type="image/png", size=10)
        Call.objects.create(
            caller=other_user, callee=user, conversation=conversation, type="video", status="missed",
            offer_sdp="v=0", ring_deadline=timezone.now(),
        )  # fmt: skip

    def test_everything_about_the_user_and_nothing_else(self, data, user):
        export = json.loads(run("export_user", "alice"))
        assert list(export) == [
            "exported_at",
            "profile",
            "social_accounts",
            "contacts",
            "memberships",
            "messages",
            "message_edits",
            "reactions",
            "mentioned_in",
            "reports_made",
            "media",
            "calls",
        ]
        assert export["profile"]["username"] == "alice" and export["profile"]["email"] == "alice@example.com"
        assert "password" not in export["profile"]
        assert [(c["username"], c["remark"]) for c in export["contacts"]] == [("bob", "colleague")]
        assert export["social_accounts"][0]["uid"] == "777"
        assert sorted(m["type"] for m in export["memberships"]) == ["group", "private"]
        assert [m["content"] for m in export["messages"]] == ["my words"]
        assert export["reports_made"][0]["target"].startswith("user ")
        assert [m["stored_as"] for m in export["media"]] == ["media/me.png"]
        assert [(c["type"], c["callee_id"]) for c in export["calls"]] == [("video", export["profile"]["user_id"])]

    def test_to_a_file(self, data, tmp_path):
        path = tmp_path / "alice.json"
        run("export_user", "alice", output=str(path))
        assert json.loads(path.read_text())["profile"]["username"] == "alice"

    def test_unwritable_file_fails(self, user, tmp_path):
        with pytest.raises(CommandError, match="Cannot write"):
            run("export_user", "alice", output=str(tmp_path / "missing" / "alice.json"))

    def test_user_without_data(self, user):
        export = json.loads(run("export_user", "alice"))
        assert export["messages"] == [] and export["contacts"] == []


class TestDeleteUser:
    def test_erases_with_confirmation(self, user, other_user, monkeypatch):
        send(user, private_chat(user, other_user), "hello")
        monkeypatch.setattr("builtins.input", lambda prompt: "alice")
        assert f"now deleted-{user.pk}" in run("delete_user", "alice", reason="ticket 12")
        user.refresh_from_db()
        assert user.username == f"deleted-{user.pk}" and not user.is_active
        assert Message.objects.get().sender_id == user.pk
        entry = AuditEntry.objects.get()
        assert (entry.actor_name, entry.action, entry.reason) == ("cli:ops", "user_delete", "ticket 12")

    @pytest.mark.parametrize("answer", ["", "yes", None])
    def test_not_confirmed_deletes_nothing(self, user, monkeypatch, answer):
        def ask(prompt):
            if answer is None:
                raise EOFError  # no terminal
            return answer

        monkeypatch.setattr("builtins.input", ask)
        with pytest.raises(CommandError, match="Not confirmed"):
            run("delete_user", "alice")
        assert User.objects.get(pk=user.pk).username == "alice"

    def test_no_input(self, user):
        run("delete_user", "alice", interactive=False)
        assert not User.objects.get(pk=user.pk).is_active

    def test_unknown_user_fails(self, db):
        with pytest.raises(CommandError, match="No user named"):
            run("delete_user", "nobody", interactive=False)


class TestResetPresence:
    def test_marks_everyone_offline(self, user, other_user):
        User.objects.update(is_online=True)
        assert "Marked 2 online users offline" in run("reset_presence")
        assert not User.objects.filter(is_online=True).exists()


@pytest.mark.parametrize(
    "command",
    ["ban_user", "unban_user", "make_moderator", "imstats", "export_user", "delete_user", "reset_presence"],
)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit:
        call_command(command, "--help")
    assert exit.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_services_and_commands_share_the_audit_log(user):
    services.user_ban(actor=make_user("mod", is_staff=True), user=user, reason="spam")
    run("unban_user", "alice")
    assert list(AuditEntry.objects.order_by("pk").values_list("actor_name", "action")) == [
        ("mod", "user_ban"),
        ("cli:ops", "user_unban"),
    ]
