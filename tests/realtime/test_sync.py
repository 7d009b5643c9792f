from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from realtime.models import EventPayload, UserEvent
from tests.accounts.test_auth import assert_error
from tests.conftest import events_of, private_chat, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_events(user, other_user):
    conversation = private_chat(user, other_user)
    for n in range(5):
        send(other_user, conversation, f"n{n}")
    return events_of(user)


def test_sync_returns_the_same_frames_as_the_socket(user_api, five_events):
    body = user_api.get("/v1/sync", {"since": "0"}).json()
    assert body["events"] == five_events
    assert body["has_more"] is False


def test_sync_pages(user_api, five_events):
    first = user_api.get("/v1/sync", {"since": "0", "limit": 2}).json()
    assert [e["id"] for e in first["events"]] == ["1", "2"] and first["has_more"] is True
    rest = user_api.get("/v1/sync", {"since": "2", "limit": 10}).json()
    assert [e["id"] for e in rest["events"]] == ["3", "4", "5"] and rest["has_more"] is False
    assert user_api.get("/v1/sync", {"since": "5"}).json() == {"events": [], "has_more": False}


@pytest.mark.parametrize("since", ["x", "-1", "", "99"])
def test_bad_since_is_400(user_api, five_events, since):
    assert "since" in assert_error(user_api.get("/v1/sync", {"since": since}), 400)["fields"]


def test_since_is_required(user_api, five_events):
    assert_error(user_api.get("/v1/sync"), 400)


def test_another_users_event_id_is_not_issued_to_you(stranger, five_events):
    from tests.conftest import client_for

    assert events_of(stranger) == []
    assert_error(client_for(stranger).get("/v1/sync", {"since": "3"}), 400)


def test_cursor_older_than_retention_is_410(user_api, five_events):
    EventPayload.objects.update(created_at=timezone.now() - timedelta(days=8))
    call_command("prune_events")
    assert not UserEvent.objects.exists()
    assert_error(user_api.get("/v1/sync", {"since": "2"}), 410)
    # A client already up to date is fine.
    assert user_api.get("/v1/sync", {"since": "5"}).json() == {"events": [], "has_more": False}


def test_prune_keeps_recent_events(user_api, user, other_user, five_events, capsys):
    EventPayload.objects.filter(pk__in=EventPayload.objects.order_by("pk").values("pk")[:2]).update(
        created_at=timezone.now() - timedelta(days=8)
    )
    call_command("prune_events")
    assert "Deleted 2 events" in capsys.readouterr().out
    assert [e["id"] for e in user_api.get("/v1/sync", {"since": "2"}).json()["events"]] == ["3", "4", "5"]
    assert_error(user_api.get("/v1/sync", {"since": "1"}), 410)


def test_prune_with_explicit_age(five_events):
    call_command("prune_events", "--older-than", "0s")
    assert not EventPayload.objects.exists()


def test_prune_rejects_bad_age(five_events):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("prune_events", "--older-than", "soon")


def test_needs_auth(api, db):
    assert_error(api.get("/v1/sync", {"since": "0"}), 401)
