"""Per-conversation settings (contract 17): mute with an end the server evaluates, notify, pin
(ordering, the cap, gapless paging), hide and include_hidden, and conversation_settings."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Membership
from chat.selectors import muted_now
from chat.services import MAX_PINNED
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for, events_of, group_of, make_user, private_chat, send

pytestmark = pytest.mark.django_db

DEFAULTS = {"muted": False, "muted_until": None, "notify": "all", "pinned": False, "pinned_at": None, "hidden": False}


def patch(user, conversation, **changes):
    return client_for(user).patch(f"/v1/conversations/c{conversation.pk}/settings", changes, format="json")


def listed(user, **params):
    return [c["conversation_id"] for c in client_for(user).get("/v1/conversations", params).json()["conversations"]]


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def conversation(user, other_user):
    return private_chat(user, other_user)


class TestMute:
    def test_every_item_has_the_defaults(self, user, conversation):
        group_of(user, make_user("gina"))
        items = client_for(user).get("/v1/conversations").json()["conversations"]
        assert [item["settings"] for item in items] == [DEFAULTS, DEFAULTS]
        assert client_for(user).get(f"/v1/conversations/c{conversation.pk}").json()["settings"] == DEFAULTS

    def test_mute_until_a_time(self, user, other_user, conversation):
        until = timezone.now() + timedelta(hours=8)
        response = patch(user, conversation, muted_until=iso(until))
        assert response.status_code == 200
        assert response.json()["conversation_id"] == f"c{conversation.pk}"
        settings = response.json()["settings"]
        assert settings["muted"] is True and settings["muted_until"].startswith(until.strftime("%Y-%m-%dT%H:%M"))
        # The other participant's settings are their own.
        assert client_for(other_user).get(f"/v1/conversations/c{conversation.pk}").json()["settings"] == DEFAULTS

    def test_an_elapsed_mute_is_over_without_any_write(self, user, conversation, monkeypatch):
        patch(user, conversation, muted_until=iso(timezone.now() + timedelta(minutes=5)))
        later = timezone.now() + timedelta(minutes=6)
        monkeypatch.setattr("django.utils.timezone.now", lambda: later)
        assert client_for(user).get(f"/v1/conversations/c{conversation.pk}").json()["settings"]["muted"] is False
        assert not Membership.objects.filter(muted_now(), user=user).exists()
        assert Membership.objects.get(user=user).muted  # nothing was written: the time alone ended it

    def test_muted_without_an_end_until_unmuted(self, user, conversation):
        patch(user, conversation, muted_until=iso(timezone.now() + timedelta(hours=1)))
        settings = patch(user, conversation, muted=True).json()["settings"]
        assert settings["muted"] is True and settings["muted_until"] is None
        assert Membership.objects.filter(muted_now(), user=user).count() == 1
        assert patch(user, conversation, muted=False).json()["settings"] == DEFAULTS

    @pytest.mark.parametrize(
        "changes",
        [
            {"muted_until": "past"},
            {"muted_until": "beyond a year"},
            {"muted_until": "tomorrow-ish"},
            {"muted": False, "muted_until": "in an hour"},
            {"notify": "some"},
            {"pinned": "maybe"},
            {"colour": "red"},
        ],
    )
    def test_bad_input_is_400(self, user, conversation, changes):
        now = timezone.now()
        moments = {
            "past": iso(now - timedelta(seconds=1)),
            "beyond a year": iso(now + timedelta(days=366)),
            "in an hour": iso(now + timedelta(hours=1)),
        }
        body = {key: moments.get(value, value) for key, value in changes.items()}
        assert_error(patch(user, conversation, **body), 400)
        assert client_for(user).get(f"/v1/conversations/c{conversation.pk}").json()["settings"] == DEFAULTS

    def test_notify_levels(self, user, conversation):
        assert patch(user, conversation, notify="mentions").json()["settings"]["notify"] == "mentions"
        assert patch(user, conversation, notify="none").json()["settings"]["notify"] == "none"

    def test_unread_count_still_counts_while_muted(self, user, other_user, conversation):
        patch(user, conversation, muted=True)
        send(other_user, conversation, "hi")
        assert client_for(user).get(f"/v1/conversations/c{conversation.pk}").json()["unread_count"] == 1

    def test_a_strangers_settings_request_is_404(self, stranger, conversation):
        assert_error(patch(stranger, conversation, muted=True), 404)
        assert_error(patch(stranger, conversation, notify="bad"), 404)


class TestEvent:
    def test_own_devices_get_conversation_settings(self, user, other_user, conversation):
        settings = patch(user, conversation, pinned=True).json()["settings"]
        assert [e["data"] for e in events_of(user, "conversation_settings")] == [
            {"conversation_id": f"c{conversation.pk}", "settings": settings}
        ]
        assert events_of(other_user, "conversation_settings") == []


def chats(user, count):
    conversations = []
    for i in range(count):
        conversation = private_chat(user, make_user(f"p{i:02d}"))
        send(user, conversation, f"n{i}")
        conversations.append(conversation)
    return conversations  # the newest activity last


class TestPin:
    def test_pinned_first_most_recently_pinned_first_then_by_activity(self, user):
        a, b, c, d = chats(user, 4)
        patch(user, a, pinned=True)
        patch(user, c, pinned=True)
        assert listed(user) == [f"c{x.pk}" for x in (c, a, d, b)]
        send(user, b, "newer")  # activity does not move a conversation above the pins
        assert listed(user) == [f"c{x.pk}" for x in (c, a, b, d)]
        assert patch(user, c, pinned=True).json()["settings"]["pinned"] is True  # again: keeps its place
        assert listed(user)[0] == f"c{c.pk}"
        patch(user, c, pinned=False)
        assert listed(user) == [f"c{x.pk}" for x in (a, b, d, c)]

    def test_paging_with_pins_is_gapless(self, user):
        conversations = chats(user, 7)
        for conversation in conversations[1::2]:
            patch(user, conversation, pinned=True)
        whole = listed(user, limit=100)
        paged = [cid for offset in range(7) for cid in listed(user, limit=1, offset=offset)]
        assert paged == whole and sorted(whole) == sorted(f"c{c.pk}" for c in conversations)

    def test_at_most_twenty_pinned(self, user):
        conversations = chats(user, MAX_PINNED + 1)
        for conversation in conversations[:MAX_PINNED]:
            assert patch(user, conversation, pinned=True).status_code == 200
        assert_error(patch(user, conversations[-1], pinned=True), 409)
        patch(user, conversations[0], pinned=False)
        assert patch(user, conversations[-1], pinned=True).status_code == 200


class TestHide:
    def test_hidden_until_the_next_new_message(self, user, other_user, conversation):
        assert patch(user, conversation, hidden=True).json()["settings"]["hidden"] is True
        assert listed(user) == []
        assert listed(user, include_hidden="true") == [f"c{conversation.pk}"]
        assert listed(other_user) == [f"c{conversation.pk}"]  # hidden for the caller only
        send(other_user, conversation, "back")
        assert listed(user) == [f"c{conversation.pk}"]
        assert client_for(user).get(f"/v1/conversations/c{conversation.pk}").json()["settings"]["hidden"] is False

    def test_unhide(self, user, conversation):
        patch(user, conversation, hidden=True)
        patch(user, conversation, hidden=False)
        assert listed(user) == [f"c{conversation.pk}"]

    def test_include_hidden_must_be_a_boolean(self, user_api):
        assert_error(user_api.get("/v1/conversations", {"include_hidden": "perhaps"}), 400)


@pytest.mark.parametrize("rows", [1, 50])
def test_the_list_stays_one_query_with_settings(user, rows, django_assert_max_num_queries):
    conversations = chats(user, rows)
    for conversation in conversations[::3]:
        patch(user, conversation, pinned=True, muted_until=iso(timezone.now() + timedelta(hours=1)), notify="none")
    client = client_for(user)
    with django_assert_max_num_queries(2):  # auth + one query for the page, its total included
        body = client.get("/v1/conversations", {"limit": 100, "include_hidden": "true"}).json()
    assert len(body["conversations"]) == rows
    assert body["conversations"][0]["settings"]["muted"] is True
