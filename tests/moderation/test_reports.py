"""POST /v1/reports (contract 10)."""

import pytest

from moderation.models import Report
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for, group_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db


def report(client, target_type, target_id, **extra):
    body = {"target_type": target_type, "target_id": target_id, "reason": "spam", **extra}
    return client.post("/v1/reports", body, format="json")


class TestCreate:
    def test_message_of_own_conversation(self, user_api, user, other_user):
        message = send(other_user, private_chat(user, other_user), "buy now")
        response = report(user_api, "message", f"m{message.pk}", details="third time today")
        assert response.status_code == 201
        body = response.json()
        stored = Report.objects.get()
        assert body == {"report_id": f"r{stored.pk}", "status": "open", "created_at": body["created_at"]}
        assert body["created_at"].endswith("Z")
        assert (stored.reporter, stored.target_type, stored.target_id) == (user, "message", message.pk)
        assert (stored.reason, stored.details) == ("spam", "third time today")

    def test_visible_user(self, user_api, other_user):
        assert report(user_api, "user", str(other_user.pk)).status_code == 201

    def test_group_they_are_in(self, user_api, user, other_user):
        group = group_of(other_user, user)
        assert report(user_api, "group", f"g{group.pk}").status_code == 201

    def test_same_target_again_while_open_returns_the_open_report(self, user_api, other_user):
        first = report(user_api, "user", str(other_user.pk)).json()
        again = report(user_api, "user", str(other_user.pk), reason="still spamming")
        assert again.status_code == 200 and again.json() == first
        assert Report.objects.count() == 1

    def test_a_handled_report_does_not_stop_a_new_one(self, user_api, other_user):
        first = report(user_api, "user", str(other_user.pk)).json()
        Report.objects.update(status=Report.Status.DISMISSED)
        again = report(user_api, "user", str(other_user.pk))
        assert again.status_code == 201 and again.json()["report_id"] != first["report_id"]

    def test_others_report_the_same_target_separately(self, user_api, other_user, stranger):
        report(user_api, "user", str(stranger.pk))
        assert report(client_for(other_user), "user", str(stranger.pk)).status_code == 201
        assert Report.objects.count() == 2


class TestOnlyWhatTheyCanSee:
    def test_message_of_someone_elses_conversation_is_404(self, user_api, other_user, stranger):
        message = send(other_user, private_chat(other_user, stranger))
        assert_error(report(user_api, "message", f"m{message.pk}"), 404)

    def test_group_they_are_not_in_is_404(self, user_api, other_user, stranger):
        group = group_of(other_user, stranger)
        assert_error(report(user_api, "group", f"g{group.pk}"), 404)

    @pytest.mark.parametrize("field", ["is_banned", "is_active"])
    def test_banned_or_inactive_user_is_404(self, user_api, other_user, field):
        setattr(other_user, field, not getattr(other_user, field))
        other_user.save()
        assert_error(report(user_api, "user", str(other_user.pk)), 404)

    @pytest.mark.parametrize(
        ("target_type", "target_id"),
        [
            ("message", "999999"),
            ("message", "12"),
            ("user", "m1"),
            ("user", "99999999"),
            ("group", "1"),
            ("group", "gx"),
        ],
    )
    def test_unknown_or_malformed_id_is_404(self, user_api, target_type, target_id):
        assert_error(report(user_api, target_type, target_id), 404)

    def test_yourself_is_400(self, user_api, user):
        assert "target_id" in assert_error(report(user_api, "user", str(user.pk)), 400)["fields"]


class TestValidation:
    @pytest.mark.parametrize(
        "body",
        [
            {"target_type": "call", "target_id": "1", "reason": "spam"},
            {"target_type": "user", "target_id": 12, "reason": "spam"},
            {"target_type": "user", "target_id": "12"},
            {"target_type": "user", "target_id": "12", "reason": ""},
            {"target_type": "user", "target_id": "12", "reason": "x" * 201},
            {"target_type": "user", "target_id": "12", "reason": "spam", "details": "x" * 2001},
            {"target_type": "user", "target_id": "12", "reason": "spam", "severity": "high"},
        ],
    )
    def test_bad_body_is_400(self, user_api, body):
        assert_error(user_api.post("/v1/reports", body, format="json"), 400)

    def test_needs_auth(self, api, other_user):
        assert_error(report(api, "user", str(other_user.pk)), 401)

    def test_throttled(self, user_api, settings, db):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "reports": "2/hour"}
        targets = [make_user(f"target{n}") for n in range(3)]
        for target in targets[:2]:
            assert report(user_api, "user", str(target.pk)).status_code == 201
        response = assert_error(report(user_api, "user", str(targets[2].pk)), 429)
        assert response["code"] == 429
