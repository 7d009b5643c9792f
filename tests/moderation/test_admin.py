"""The moderators' admin: permissions, actions calling the services, pages that stay cheap."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group as AuthGroup
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Device, User
from calls.models import Call
from chat.models import Message
from imserver.admin_tools import EstimatedCountPaginator
from media.models import Media
from moderation import services
from moderation.models import AuditEntry, Report
from realtime import bus
from tests.accounts.test_auth import assert_error, login
from tests.conftest import PASSWORD, events_of, group_of, is_postgres, make_user, private_chat, send, session_tokens

ADMIN_LISTS = [
    "/admin/accounts/user/",
    "/admin/chat/conversation/",
    "/admin/chat/message/",
    "/admin/groups/group/",
    "/admin/moderation/report/",
    "/admin/moderation/auditentry/",
    "/admin/media/media/",
    "/admin/calls/call/",
    "/admin/accounts/device/",
]

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(db):
    return services.moderator_grant(actor="cli:root", user=make_user("mod"))


@pytest.fixture
def admin_client(moderator):
    client = Client()
    client.force_login(moderator)
    return client


def run_action(client, url, action, objects, **confirm):
    """Posts an admin action for objects as the changelist does; with confirm, the reason page too."""
    data = {"action": action, "_selected_action": [str(o.pk) for o in objects], "index": "0"}
    response = client.post(url, data)
    if confirm:
        data = {"action": action, "_selected_action": data["_selected_action"], "confirm": "yes", **confirm}
        response = client.post(url, data)
    return response


class TestModerators:
    def test_group_has_exactly_the_moderation_permissions(self, db):
        permissions = AuthGroup.objects.get(name="Moderators").permissions.values_list(
            "content_type__app_label", "codename"
        )
        assert set(permissions) == {
            ("accounts", "view_user"),
            ("accounts", "ban_user"),
            ("groups", "view_group"),
            ("chat", "view_conversation"),
            ("chat", "view_membership"),
            ("chat", "view_message"),
            ("chat", "view_messageedit"),
            ("chat", "remove_message"),
            ("moderation", "view_report"),
            ("moderation", "handle_report"),
            ("moderation", "view_auditentry"),
            ("media", "view_media"),
            ("calls", "view_call"),
            ("accounts", "view_device"),
        }

    @pytest.mark.parametrize("url", ["/admin/", *ADMIN_LISTS])
    def test_can_view(self, admin_client, url):
        assert admin_client.get(url).status_code == 200

    def test_every_detail_page_renders_read_only(self, admin_client, user, other_user):
        conversation = private_chat(user, other_user)
        message = send(user, conversation, "hello")
        group = group_of(user, other_user)
        upload = Media.objects.create(
            owner=user, kind="image", file="media/x.png", thumbnail="media/x-t.png",
            content_type="image/png", size=1000, width=10, height=10, filename="x.png",
        )  # fmt: skip
        call = Call.objects.create(
            caller=user, callee=other_user, conversation=conversation, type="audio", status="missed",
            offer_sdp="v=0", ring_deadline=timezone.now(),
        )  # fmt: skip
        report = Report.objects.create(reporter=user, target_type="message", target_id=message.pk, reason="spam")
        for url in [
            f"/admin/chat/conversation/{conversation.pk}/change/",
            f"/admin/chat/message/{message.pk}/change/",
            f"/admin/groups/group/{group.pk}/change/",
            f"/admin/media/media/{upload.pk}/change/",
            f"/admin/calls/call/{call.pk}/change/",
            f"/admin/moderation/report/{report.pk}/change/",
        ]:
            response = admin_client.get(url)
            assert response.status_code == 200, url
            assert not response.context["adminform"].form.fields, url  # nothing editable

    def test_cannot_add_change_or_delete_users(self, admin_client, user):
        assert admin_client.get("/admin/accounts/user/add/").status_code == 403
        assert admin_client.get(f"/admin/accounts/user/{user.pk}/delete/").status_code == 403
        admin_client.post(f"/admin/accounts/user/{user.pk}/change/", {"username": "renamed", "is_staff": "on"})
        assert User.objects.get(pk=user.pk).username == "alice"
        page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
        assert 'name="username"' not in page and "pbkdf2" not in page.lower()

    def test_has_no_superuser_powers(self, admin_client):
        assert admin_client.get("/admin/auth/group/").status_code == 403
        assert admin_client.get("/admin/token_blacklist/outstandingtoken/").status_code == 403

    def test_nobody_edits_the_audit_log(self, db):
        root = make_user("root", is_staff=True, is_superuser=True)
        services.user_ban(actor=root, user=make_user("spammer"), reason="spam")
        entry = AuditEntry.objects.get()
        client = Client()
        client.force_login(root)
        assert client.get("/admin/moderation/auditentry/add/").status_code == 403
        assert client.get(f"/admin/moderation/auditentry/{entry.pk}/delete/").status_code == 403
        page = client.get(f"/admin/moderation/auditentry/{entry.pk}/change/").content.decode()
        assert 'name="reason"' not in page


class TestBanActions:
    def test_ban_asks_for_a_reason_then_bans(self, admin_client, moderator, user, other_user):
        page = run_action(admin_client, "/admin/accounts/user/", "ban_users", [user, other_user])
        assert page.status_code == 200 and b'name="reason"' in page.content
        assert not User.objects.filter(is_banned=True).exists()

        done = run_action(admin_client, "/admin/accounts/user/", "ban_users", [user, other_user], reason="spam ring")
        assert done.status_code == 302
        assert set(User.objects.filter(is_banned=True, ban_reason="spam ring")) == {user, other_user}
        entries = AuditEntry.objects.filter(action="user_ban")
        assert {(e.actor, e.target_id, e.reason) for e in entries} == {
            (moderator, user.pk, "spam ring"),
            (moderator, other_user.pk, "spam ring"),
        }

    def test_reason_is_required(self, admin_client, user):
        page = run_action(admin_client, "/admin/accounts/user/", "ban_users", [user], reason="")
        assert page.status_code == 200 and b"This field is required" in page.content
        assert not User.objects.get(pk=user.pk).is_banned

    def test_staff_are_skipped_with_a_warning(self, admin_client, user, moderator):
        other_moderator = services.moderator_grant(actor="cli:root", user=make_user("mod2"))
        response = run_action(
            admin_client, "/admin/accounts/user/", "ban_users", [user, other_moderator], reason="spam"
        )
        messages = [str(m) for m in response.wsgi_request._messages]
        assert any("mod2 is staff" in m for m in messages)
        assert list(User.objects.filter(is_banned=True)) == [user]

    def test_over_a_page_the_count_is_typed_to_confirm(self, admin_client, moderator):
        User.objects.bulk_create(User(username=f"spammer{n}", email=f"spammer{n}@example.com") for n in range(60))
        count = User.objects.count()  # the moderator too (staff: skipped with a warning)
        across = {"action": "ban_users", "select_across": "1", "_selected_action": [str(moderator.pk)], "index": "0"}
        page = admin_client.post("/admin/accounts/user/", across)
        assert f"This will ban users: {count:,} in all".encode() in page.content
        assert b'name="confirm_count"' in page.content
        for typed in ({}, {"confirm_count": "5"}):
            refused = admin_client.post(
                "/admin/accounts/user/", {**across, "confirm": "yes", "reason": "spam", **typed}
            )
            assert refused.status_code == 200 and b'name="confirm_count"' in refused.content
            assert not User.objects.filter(is_banned=True).exists()
        done = admin_client.post(
            "/admin/accounts/user/", {**across, "confirm": "yes", "reason": "spam", "confirm_count": str(count)}
        )
        assert done.status_code == 302
        assert User.objects.filter(is_banned=True).count() == count - 1

    def test_more_selected_than_a_page_also_asks_for_the_count(self, admin_client):
        users = User.objects.bulk_create(
            User(username=f"spammer{n}", email=f"spammer{n}@example.com") for n in range(51)
        )
        run_action(admin_client, "/admin/accounts/user/", "ban_users", users, reason="spam")
        assert not User.objects.filter(is_banned=True).exists()
        run_action(admin_client, "/admin/accounts/user/", "ban_users", users, reason="spam", confirm_count="51")
        assert User.objects.filter(is_banned=True).count() == 51

    def test_unban(self, admin_client, user):
        services.user_ban(actor="cli:ops", user=user, reason="spam")
        run_action(admin_client, "/admin/accounts/user/", "unban_users", [user], reason="")
        assert not User.objects.get(pk=user.pk).is_banned

    def test_user_page_offers_ban_or_unban(self, admin_client, user):
        page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
        assert 'data-object-action="ban_users"' in page and "unban_users" not in page
        services.user_ban(actor="cli:ops", user=user, reason="spam")
        page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
        assert 'data-object-action="unban_users"' in page

    def test_the_page_button_leads_to_the_reason_page(self, admin_client, user):
        # What the "Ban…" button posts: the action and the object, without the list's index.
        page = admin_client.post("/admin/accounts/user/", {"action": "ban_users", "_selected_action": str(user.pk)})
        assert page.status_code == 200 and b'name="reason"' in page.content


class TestDevices:
    def test_user_page_lists_devices_without_their_push_tokens(self, admin_client, user):
        Device.objects.create(user=user, name="Pixel 9", platform="android", push_provider="fcm", push_token="secret-t")
        page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
        assert "Pixel 9" in page and "android" in page and "fcm" in page
        assert "secret-t" not in page
        device = Device.objects.get()
        detail = admin_client.get(f"/admin/accounts/device/{device.pk}/change/")
        assert detail.status_code == 200 and not detail.context["adminform"].form.fields
        assert "secret-t" not in detail.content.decode()
        assert 'data-object-action="revoke_devices"' in detail.content.decode()

    def test_sign_out_asks_for_a_reason_then_revokes_and_logs(
        self, admin_client, api, moderator, user, monkeypatch, django_capture_on_commit_callbacks
    ):
        stolen, kept = session_tokens(user, name="stolen"), session_tokens(user, name="kept")
        device = Device.objects.get(name="stolen")
        url = "/admin/accounts/device/"
        page = run_action(admin_client, url, "revoke_devices", [device], reason="")
        assert page.status_code == 200 and b"This field is required" in page.content
        assert Device.objects.filter(pk=device.pk).exists()

        published = []
        monkeypatch.setattr(bus, "publish", published.extend)
        with django_capture_on_commit_callbacks(execute=True):
            run_action(admin_client, url, "revoke_devices", [device], reason="phone reported stolen")
        assert not Device.objects.filter(pk=device.pk).exists()
        assert bus.close_message(user.pk, 4401, device_id=device.pk) in published
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {stolen['token']}"), 401)
        assert api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {kept['token']}").status_code == 200
        entry = AuditEntry.objects.get(action="device_revoke")
        assert (entry.actor, entry.target_type, entry.target_id) == (moderator, "device", device.pk)
        assert (
            entry.reason == "phone reported stolen" and "stolen" in entry.target_repr and "alice" in entry.target_repr
        )
        audit_log = admin_client.get("/admin/moderation/auditentry/")  # the entry's target: the device's page
        assert audit_log.status_code == 200 and f'/admin/accounts/device/{device.pk}/change/">device d{device.pk}<' in (
            audit_log.content.decode()
        )

    def test_staff_devices_are_only_for_superusers(self, admin_client, moderator):
        other = services.moderator_grant(actor="cli:root", user=make_user("mod2"))
        session_tokens(other)
        response = run_action(
            admin_client, "/admin/accounts/device/", "revoke_devices", list(other.devices.all()), reason="x"
        )
        assert any("mod2 is staff" in str(m) for m in response.wsgi_request._messages)
        assert other.devices.exists()

    def test_without_the_ban_permission_there_is_no_sign_out(self, user):
        viewer = make_user("viewer", is_staff=True)
        viewer.user_permissions.add(*AuthGroup.objects.get(name="Moderators").permissions.exclude(codename="ban_user"))
        session_tokens(user)
        client = Client()
        client.force_login(viewer)
        assert client.get("/admin/accounts/device/").status_code == 200
        run_action(client, "/admin/accounts/device/", "revoke_devices", list(user.devices.all()), reason="x")
        assert user.devices.exists()


class TestRemoveMessages:
    def test_removes_for_everyone_and_logs(self, admin_client, moderator, user, other_user):
        conversation = private_chat(user, other_user)
        bad, fine = send(user, conversation, "nasty"), send(user, conversation, "fine")
        run_action(admin_client, "/admin/chat/message/", "remove_messages", [bad], reason="harassment")
        assert Message.objects.get(pk=bad.pk).status == "removed"
        assert Message.objects.get(pk=fine.pk).status == "sent"
        assert events_of(other_user, "message_status")[0]["data"]["message_id"] == f"m{bad.pk}"
        assert AuditEntry.objects.get(action="message_remove").actor == moderator

    def test_without_permission_the_action_is_not_offered(self, user, other_user):
        viewer = make_user("viewer", is_staff=True)
        viewer.user_permissions.add(
            *AuthGroup.objects.get(name="Moderators").permissions.exclude(codename="remove_message")
        )
        client = Client()
        client.force_login(viewer)
        message = send(user, private_chat(user, other_user))
        assert b"remove_messages" not in client.get("/admin/chat/message/").content
        run_action(client, "/admin/chat/message/", "remove_messages", [message], reason="x")
        assert Message.objects.get(pk=message.pk).status == "sent"


class TestReports:
    def test_queue_shows_open_reports_by_default(self, admin_client, user, other_user):
        open_report = Report.objects.create(reporter=user, target_type="user", target_id=other_user.pk, reason="spam")
        Report.objects.create(
            reporter=other_user, target_type="user", target_id=user.pk, reason="rude", status="dismissed"
        )
        page = admin_client.get("/admin/moderation/report/")
        assert [r.pk for r in page.context["cl"].result_list] == [open_report.pk]
        everything = admin_client.get("/admin/moderation/report/", {"status": "all"})
        assert len(everything.context["cl"].result_list) == 2

    @pytest.mark.parametrize(("action", "status"), [("resolve_reports", "resolved"), ("dismiss_reports", "dismissed")])
    def test_handle_with_a_note(self, admin_client, moderator, user, other_user, action, status):
        report = Report.objects.create(reporter=user, target_type="user", target_id=other_user.pk, reason="spam")
        run_action(admin_client, "/admin/moderation/report/", action, [report], reason="warned them")
        report.refresh_from_db()
        assert (report.status, report.note, report.handled_by) == (status, "warned them", moderator)

    def test_message_report_shows_it_among_its_neighbours(self, admin_client, user, other_user):
        conversation = private_chat(user, other_user)
        sent = [send(user if n % 2 else other_user, conversation, f"line {n}") for n in range(10)]
        report = Report.objects.create(reporter=user, target_type="message", target_id=sent[5].pk, reason="spam")
        page = admin_client.get(f"/admin/moderation/report/{report.pk}/change/").content.decode()
        shown = [n for n in range(10) if f"line {n}<" in page]
        assert shown == [2, 3, 4, 5, 6, 7, 8]
        assert 'data-object-action="resolve_reports"' in page

    def test_user_report_shows_profile_and_recent_messages(self, admin_client, user, other_user):
        send(other_user, private_chat(user, other_user), "buy followers")
        report = Report.objects.create(reporter=user, target_type="user", target_id=other_user.pk, reason="spam")
        page = admin_client.get(f"/admin/moderation/report/{report.pk}/change/").content.decode()
        assert "buy followers" in page and "Bob" in page

    def test_group_report_shows_the_group(self, admin_client, user, other_user):
        group = group_of(other_user, user, name="Crypto gains")
        report = Report.objects.create(reporter=user, target_type="group", target_id=group.pk, reason="scam")
        page = admin_client.get(f"/admin/moderation/report/{report.pk}/change/").content.decode()
        assert "Crypto gains" in page and "<th>Members</th><td>2</td>" in page
        owner_link = f'<a href="/admin/accounts/user/{other_user.pk}/change/">{other_user.username}</a>'
        assert f"<th>Owner</th><td>{owner_link}</td>" in page

    def test_target_that_no_longer_exists(self, admin_client, user):
        report = Report.objects.create(reporter=user, target_type="group", target_id=999999, reason="scam")
        page = admin_client.get(f"/admin/moderation/report/{report.pk}/change/").content.decode()
        assert "no longer exists" in page


class TestPages:
    def test_user_page_shows_groups_and_twenty_recent_messages(self, admin_client, user, other_user):
        group_of(other_user, user, name="Hiking")
        conversation = private_chat(user, other_user)
        for n in range(25):
            send(user, conversation, f"note {n}.")
        page = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
        assert "Hiking" in page
        assert [n for n in range(25) if f"note {n}." in page] == list(range(5, 25))

    def test_message_list_links_sender_and_conversation(self, admin_client, user, other_user):
        conversation = private_chat(user, other_user)
        send(user, conversation, "hello")
        page = admin_client.get("/admin/chat/message/").content.decode()
        assert f'href="/admin/accounts/user/{user.pk}/change/"' in page
        assert f'href="/admin/chat/conversation/{conversation.pk}/change/"' in page

    def test_message_search_and_filters(self, admin_client, user, other_user):
        conversation = private_chat(user, other_user)
        send(user, conversation, "needle in a haystack")
        send(user, conversation, "hay")
        found = admin_client.get("/admin/chat/message/", {"q": "needle"}).context["cl"].result_list
        assert [m.content for m in found] == ["needle in a haystack"]
        by_sender = admin_client.get("/admin/chat/message/", {"sender__id__exact": user.pk, "type__exact": "text"})
        assert len(by_sender.context["cl"].result_list) == 2

    def test_index_shows_figures_at_a_glance(self, admin_client, user, other_user):
        User.objects.filter(pk=user.pk).update(is_online=True)
        send(user, private_chat(user, other_user))
        Report.objects.create(reporter=user, target_type="user", target_id=other_user.pk, reason="spam")
        figures = {label: value for label, value, _ in admin_client.get("/admin/").context["figures"]}
        assert figures == {"Users": 3, "Online now": 1, "Messages today": 1, "Open reports": 1}


@pytest.fixture
def many_rows(moderator):
    """More rows than a page of every list: a query per row would show."""
    people = [make_user(f"user{n}") for n in range(60)]
    Device.objects.bulk_create([Device(user=person, name="phone") for person in people])
    for n in range(30):
        group = group_of(people[n], people[n + 1], people[n + 2], name=f"group {n}")
        send(people[n], group.conversation, f"hello {n}")
        send(people[n + 1], private_chat(people[n + 1], people[n + 2]), f"hi {n}")
        Report.objects.create(reporter=people[n], target_type="user", target_id=people[n + 1].pk, reason="spam")
        Report.objects.create(reporter=people[n], target_type="message", target_id=1, reason="spam")
        Media.objects.create(
            owner=people[n], kind="image", file=f"media/x{n}.png", thumbnail=f"media/x{n}-t.png",
            content_type="image/png", size=1000, width=10, height=10, filename=f"x{n}.png",
        )  # fmt: skip
        conversation = private_chat(people[n], people[n + 1])
        Call.objects.create(
            caller=people[n], callee=people[n + 1], conversation=conversation, type="audio", status="missed",
            offer_sdp="v=0", ring_deadline=timezone.now(),
        )  # fmt: skip
    for person in people[30:]:
        services.user_ban(actor="cli:ops", user=person, reason="spam")


@pytest.mark.parametrize(
    "url", [*ADMIN_LISTS, "/admin/accounts/user/?q=user", "/admin/chat/message/?q=hello&type__exact=text"]
)
def test_lists_cost_no_query_per_row(admin_client, many_rows, url, django_assert_max_num_queries):
    with django_assert_max_num_queries(14):  # 12, whether the moderator has a second factor, and must have one
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= 30


class TestNameSearch:
    """The search boxes of users and groups go through the app's name index (imserver/namesearch.py)."""

    def listed(self, client, url, q):
        response = client.get(url, {"q": q})
        assert response.status_code == 200
        return sorted(str(row) for row in response.context["cl"].result_list)

    def test_groups_by_name_in_any_width_and_script(self, admin_client, user, other_user):
        group_of(user, other_user, name="上海ＤＥＶ小组")
        group_of(user, other_user, name="海上")
        assert self.listed(admin_client, "/admin/groups/group/", "上海dev") == ["上海ＤＥＶ小组"]
        assert self.listed(admin_client, "/admin/groups/group/", "海") == ["上海ＤＥＶ小组", "海上"]
        assert self.listed(admin_client, "/admin/groups/group/", "东") == []

    def test_a_renamed_group_is_found_by_its_new_name_only(self, admin_client, user, other_user):
        from groups.services import group_update_info

        group = group_of(user, other_user, name="旧名字")
        group_update_info(user=user, group_id=group.pk, name="新名字")
        assert self.listed(admin_client, "/admin/groups/group/", "旧") == []
        assert self.listed(admin_client, "/admin/groups/group/", "新名") == ["新名字"]

    def test_users_by_name_or_email(self, admin_client, db):
        make_user("wang", nickname="王小明", email="xm@example.com")
        assert self.listed(admin_client, "/admin/accounts/user/", "小明") == ["wang"]
        assert self.listed(admin_client, "/admin/accounts/user/", "ＷＡＮ") == ["wang"]
        assert self.listed(admin_client, "/admin/accounts/user/", "xm@exa") == ["wang"]


class TestEstimatedCount:
    def test_exact_on_filtered_lists_and_small_tables(self, user, other_user):
        conversation = private_chat(user, other_user)
        for n in range(3):
            send(user, conversation, f"m{n}")
        assert EstimatedCountPaginator(Message.objects.order_by("-pk"), 50).count == 3
        assert EstimatedCountPaginator(Message.objects.filter(content="m1").order_by("-pk"), 50).count == 1

    @pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's statistics (set DATABASE_URL)")
    def test_unfiltered_big_table_reads_the_statistics(self, user, other_user, monkeypatch, django_assert_num_queries):
        conversation = private_chat(user, other_user)
        for n in range(5):
            send(user, conversation, f"m{n}")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE chat_message")
        monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1)
        with django_assert_num_queries(1) as captured:
            count = EstimatedCountPaginator(Message.objects.order_by("-pk"), 50).count
        assert "pg_class" in captured.captured_queries[0]["sql"] and "COUNT" not in captured.captured_queries[0]["sql"]
        assert count == 5


class TestAdminAccess:
    """Contract 23: a banned staff account cannot use the admin, its sessions end at the ban, and
    a password changed here revokes the API tokens as any other change does."""

    def test_a_ban_ends_the_moderators_admin_session(self, admin_client, moderator):
        assert admin_client.get("/admin/").status_code == 200
        services.user_ban(actor="cli:root", user=moderator, reason="abuse")
        response = admin_client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    def test_the_admin_login_shares_the_api_lockout(self, api, moderator):
        client = Client()
        for _ in range(10):
            page = client.post("/admin/login/", {"username": "mod", "password": "wrong-password"})
            assert page.status_code == 200 and "correct username and password" in page.content.decode()
        page = client.post("/admin/login/", {"username": "mod", "password": PASSWORD})
        assert page.status_code == 200 and "Too many failed logins" in page.content.decode()
        assert "_auth_user_id" not in client.session
        assert_error(login(api, username="mod"), 429)  # the same counters as the API's

    def test_api_failures_lock_the_admin_login_too(self, api, moderator):
        for _ in range(10):
            assert_error(login(api, username="mod", password="wrong-password"), 401)
        page = Client().post("/admin/login/", {"username": "mod", "password": PASSWORD})
        assert "Too many failed logins" in page.content.decode()

    def test_the_admin_login_still_works(self, moderator):
        client = Client()
        assert client.post("/admin/login/", {"username": "MOD", "password": PASSWORD}).status_code == 302
        assert client.get("/admin/").status_code == 200

    def test_a_banned_moderator_cannot_log_in(self, moderator):
        services.user_ban(actor="cli:root", user=moderator, reason="abuse")
        client = Client()
        response = client.post("/admin/login/?next=/admin/", {"username": "mod", "password": PASSWORD})
        assert response.status_code == 200 and "This account is banned." in response.content.decode()
        assert client.get("/admin/").status_code == 302

    def test_a_session_of_banned_staff_is_refused_even_if_it_survived(self, admin_client, moderator):
        User.objects.filter(pk=moderator.pk).update(is_banned=True)  # no revocation: the check itself
        assert admin_client.get("/admin/accounts/user/").status_code == 302

    def test_changing_ones_own_password_revokes_the_api_tokens(self, admin_client, api, moderator):
        pair = login(api, "mod").json()
        form = {"old_password": PASSWORD, "new_password1": "An0ther-secret!", "new_password2": "An0ther-secret!"}
        response = admin_client.post("/admin/password_change/", form)
        assert response.status_code == 302, response.content
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {pair['token']}"), 401)
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json"), 401)
        assert admin_client.get("/admin/").status_code == 200  # the session that changed it goes on

    def test_sessions_end_when_idle(self, admin_client, settings):
        response = admin_client.get("/admin/")
        assert response.cookies["sessionid"]["max-age"] == settings.SESSION_COOKIE_AGE == 30 * 60


class TestPrivateReadAudit:
    """A moderator reading private messages in the admin leaves an audit entry (issue 19)."""

    def views(self, moderator):
        return list(
            AuditEntry.objects.filter(actor=moderator, action="message_view").values_list("target_id", flat=True)
        )

    def test_message_list_and_page_audit_private_conversations_once_an_hour(
        self, admin_client, moderator, user, other_user
    ):
        private = private_chat(user, other_user)
        message = send(user, private, "a secret")
        group = group_of(user, other_user)
        send(user, group.conversation, "team news")

        assert admin_client.get("/admin/chat/message/").status_code == 200
        assert self.views(moderator) == [private.pk]  # the group's conversation is not private
        assert admin_client.get(f"/admin/chat/message/{message.pk}/change/").status_code == 200
        admin_client.get(f"/admin/chat/message/?conversation__id__exact={private.pk}")
        assert self.views(moderator) == [private.pk]  # once per hour
        entry = AuditEntry.objects.get(action="message_view")
        assert (entry.actor_name, entry.target_type, entry.target_repr) == (
            "mod",
            "conversation",
            f"c{private.pk} (private)",
        )

        AuditEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(hours=1, seconds=1))
        admin_client.get(f"/admin/chat/message/{message.pk}/change/")
        assert self.views(moderator) == [private.pk, private.pk]

    def test_a_users_page_audits_the_private_conversations_of_its_recent_messages(
        self, admin_client, moderator, user, other_user
    ):
        private = private_chat(user, other_user)
        send(user, private, "a secret")
        send(user, group_of(user, other_user).conversation, "team news")
        assert admin_client.get(f"/admin/accounts/user/{user.pk}/change/").status_code == 200
        assert self.views(moderator) == [private.pk]

    def test_a_group_messages_page_is_not_audited(self, admin_client, moderator, user, other_user):
        group = group_of(user, other_user)
        message = send(user, group.conversation, "team news")
        admin_client.get(f"/admin/chat/message/{message.pk}/change/")
        assert self.views(moderator) == []

    def test_the_audit_log_links_the_conversation(self, admin_client, moderator, user, other_user):
        private = private_chat(user, other_user)
        send(user, private, "a secret")
        admin_client.get("/admin/chat/message/")
        page = admin_client.get("/admin/moderation/auditentry/").content.decode()
        assert f"/admin/chat/conversation/{private.pk}/change/" in page
