"""Presence under last_seen and blocks (contract 16): every place status and last_online appear
(profile, contacts, group members, contact_status), the setting and a block in the direction the
contract names, and changing the setting back or unblocking restores each."""

import json
from datetime import UTC, datetime

import httpx
import pytest
import websockets

from accounts.models import User
from contacts.models import Block, Contact, PrivacySettings
from presence.services import user_presence_apply, user_status_set
from tests.conftest import client_for, events_of, group_of, make_user
from tests.realtime.test_cluster import next_frame
from tests.servers import Server, cluster_marks, register

pytestmark = pytest.mark.django_db

LAST_ONLINE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHOWN = ("busy", "2026-01-02T03:04:05Z", "Meeting")
LAST_SEEN_HIDDEN = ("offline", None, "Meeting")
BLOCK_HIDDEN = ("offline", None, "")


@pytest.fixture
def alice(user):
    """Online and busy, with a status message: what others may or may not see."""
    User.objects.filter(pk=user.pk).update(
        is_online=True, chosen_status="busy", status_message="Meeting", last_online=LAST_ONLINE
    )
    return User.objects.get(pk=user.pk)


@pytest.fixture
def bob(other_user, alice):
    """Has alice as a contact and shares a group with her."""
    Contact.objects.create(owner=other_user, user=alice)
    group_of(other_user, alice)
    return other_user


def _presence(item):
    return item["status"], item["last_online"], item["status_message"]


def seen_in_profile(viewer, subject):
    return _presence(client_for(viewer).get(f"/v1/users/{subject.pk}").json())


def seen_in_contacts(viewer, subject):
    contacts = client_for(viewer).get("/v1/contacts").json()["contacts"]
    return _presence(next(c for c in contacts if c["user_id"] == str(subject.pk)))


def seen_in_contact_update(viewer, subject):
    response = client_for(viewer).patch(f"/v1/contacts/{subject.pk}", {"remark": "A"}, format="json")
    return _presence(response.json())


def seen_in_members(viewer, subject):
    group_id = client_for(viewer).get("/v1/conversations", {"type": "group"}).json()["conversations"][0]["target_id"]
    members = client_for(viewer).get(f"/v1/groups/{group_id}/members").json()["members"]
    status = next(m["status"] for m in members if m["user_id"] == str(subject.pk))
    return status  # a member shows no last_online nor status message


APPEARANCES = [seen_in_profile, seen_in_contacts, seen_in_contact_update, seen_in_members]


def expect(seen, shown):
    return shown[0] if seen is seen_in_members else shown


def set_last_seen(user, value):
    response = client_for(user).patch("/v1/user/me/settings", {"last_seen": value}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize("seen", APPEARANCES)
class TestAppearances:
    def test_everyone_sees_the_truth(self, alice, bob, seen):
        assert seen(bob, alice) == expect(seen, SHOWN)

    def test_nobody_hides_status_and_last_online_until_set_back(self, alice, bob, seen):
        set_last_seen(alice, "nobody")
        assert seen(bob, alice) == expect(seen, LAST_SEEN_HIDDEN)
        set_last_seen(alice, "everyone")
        assert seen(bob, alice) == expect(seen, SHOWN)

    def test_contacts_shows_only_to_the_owners_contacts(self, alice, bob, seen):
        set_last_seen(alice, "contacts")
        assert seen(bob, alice) == expect(seen, LAST_SEEN_HIDDEN)  # bob has alice, not alice bob
        Contact.objects.create(owner=alice, user=bob)
        assert seen(bob, alice) == expect(seen, SHOWN)
        Contact.objects.filter(owner=alice).delete()
        assert seen(bob, alice) == expect(seen, LAST_SEEN_HIDDEN)

    def test_the_blocked_user_sees_offline_and_no_status_message_until_unblocked(self, alice, bob, seen):
        assert client_for(alice).put(f"/v1/blocks/{bob.pk}").status_code == 204
        assert seen(bob, alice) == expect(seen, BLOCK_HIDDEN)
        assert client_for(alice).delete(f"/v1/blocks/{bob.pk}").status_code == 204
        assert seen(bob, alice) == expect(seen, SHOWN)

    def test_the_blocker_still_sees_the_blocked_user(self, alice, bob, seen):
        # Contract 16 hides the blocker from the blocked user ("B sees A as offline"), not back.
        Block.objects.create(owner=bob, user=alice)
        assert seen(bob, alice) == expect(seen, SHOWN)


def test_users_see_their_own_presence_whatever_their_setting(alice):
    set_last_seen(alice, "nobody")
    assert seen_in_profile(alice, alice) == SHOWN
    assert _presence(client_for(alice).get("/v1/user/me").json()) == SHOWN


@pytest.mark.parametrize("rows", [1, 50])
def test_lists_cost_one_query_for_presence_at_any_size(alice, rows, django_assert_max_num_queries):
    """Half the listed users keep last_seen to nobody, a third blocked the viewer."""
    group = group_of(alice)
    others = [make_user(f"p{i:02d}") for i in range(rows)]
    for i, other in enumerate(others):
        Contact.objects.create(owner=alice, user=other)
        group.conversation.memberships.create(user=other)
        if i % 2:
            PrivacySettings.objects.filter(user=other).update(last_seen="nobody")
        if i % 3 == 0:
            Block.objects.create(owner=other, user=alice)
    client = client_for(alice)
    with django_assert_max_num_queries(3):  # auth, the page with its total, presence
        assert len(client.get("/v1/contacts", {"limit": 100}).json()["contacts"]) == rows
    with django_assert_max_num_queries(4):  # auth, membership, the page with its total, presence
        assert len(client.get(f"/v1/groups/g{group.pk}/members", {"limit": 100}).json()["members"]) == rows + 1


class TestContactStatus:
    @pytest.fixture
    def carol(self, alice):
        carol = make_user("carol")
        Contact.objects.create(owner=carol, user=alice)
        return carol

    def statuses(self, viewer):
        return [e["data"] for e in events_of(viewer, "contact_status")]

    def changes(self, alice):
        """status_update, then the last socket closing, then one opening."""
        user_status_set(user=alice, status="away", custom_message="Lunch")
        user_presence_apply(user_id=alice.pk, count_sockets=lambda user_id: 0)
        user_presence_apply(user_id=alice.pk, count_sockets=lambda user_id: 1)

    def test_watchers_hear_every_change(self, alice, bob):
        self.changes(alice)
        assert [(e["status"], e["custom_message"]) for e in self.statuses(bob)] == [
            ("away", "Lunch"),
            ("offline", "Lunch"),
            ("away", "Lunch"),
        ]

    def test_nobody_sends_watchers_one_offline_then_nothing_and_everyone_the_current_again(self, alice, bob):
        set_last_seen(alice, "nobody")
        assert self.statuses(bob) == [
            {"user_id": str(alice.pk), "status": "offline", "last_online": None, "custom_message": "Meeting"}
        ]
        self.changes(alice)
        assert len(self.statuses(bob)) == 1
        set_last_seen(alice, "everyone")
        current = self.statuses(bob)[-1]
        assert (current["status"], current["custom_message"]) == ("away", "Lunch")
        assert current["last_online"] is not None
        user_status_set(user=alice, status="busy")
        assert self.statuses(bob)[-1]["status"] == "busy"

    def test_a_setting_change_that_moves_nobody_in_or_out_sends_nothing(self, alice, bob):
        set_last_seen(alice, "everyone")
        client_for(alice).patch("/v1/user/me/settings", {"send_typing": False}, format="json")
        assert self.statuses(bob) == []

    def test_contacts_reach_only_the_owners_contacts(self, alice, bob, carol):
        Contact.objects.create(owner=alice, user=carol)
        set_last_seen(alice, "contacts")
        assert [e["status"] for e in self.statuses(bob)] == ["offline"]  # the last one
        assert self.statuses(carol) == []  # still sees alice: nothing changed for her
        self.changes(alice)
        assert len(self.statuses(bob)) == 1
        assert len(self.statuses(carol)) == 3

    def test_the_blocked_watcher_hears_nothing_until_unblocked(self, alice, bob, carol):
        client_for(alice).put(f"/v1/blocks/{bob.pk}")
        self.changes(alice)
        assert self.statuses(bob) == []
        assert len(self.statuses(carol)) == 3  # only bob is left out
        client_for(alice).delete(f"/v1/blocks/{bob.pk}")
        user_status_set(user=alice, status="busy")
        assert [e["status"] for e in self.statuses(bob)] == ["busy"]

    def test_a_blocker_still_hears_the_blocked_user(self, alice, bob):
        Block.objects.create(owner=bob, user=alice)
        self.changes(alice)
        assert len(self.statuses(bob)) == 3


class TestAcrossProcesses:
    """A setting changed through one process holds for the next request and event on another."""

    pytestmark = cluster_marks("two processes share state only through PostgreSQL and Redis")

    @pytest.fixture
    def cluster(self, tmp_path):
        servers = [Server(tmp_path) for _ in range(2)]
        yield servers
        for server in servers:
            server.stop()

    async def test_last_seen_changed_on_one_process_holds_on_the_other(self, cluster):
        a, b = cluster
        alice, bob = register(a.base, "alice"), register(a.base, "bob")
        as_alice = {"Authorization": f"Bearer {alice['token']}"}
        as_bob = {"Authorization": f"Bearer {bob['token']}"}
        async with httpx.AsyncClient(timeout=10) as client:
            await client.post(f"{b.base}/v1/contacts", json={"user_id": alice["user_id"]}, headers=as_bob)
            async with (
                websockets.connect(f"{b.ws}?token={bob['token']}") as watcher,
                websockets.connect(f"{a.ws}?token={alice['token']}") as socket,
            ):
                assert (await next_frame(watcher, "contact_status"))["data"]["status"] == "online"
                settings = await client.patch(
                    f"{a.base}/v1/user/me/settings", json={"last_seen": "nobody"}, headers=as_alice
                )
                assert settings.status_code == 200
                last = (await next_frame(watcher, "contact_status"))["data"]
                assert (last["status"], last["last_online"]) == ("offline", None)
                profile = (await client.get(f"{b.base}/v1/users/{alice['user_id']}", headers=as_bob)).json()
                assert (profile["status"], profile["last_online"]) == ("offline", None)

                await socket.send(json.dumps({"type": "status_update", "data": {"status": "busy"}}))
                await socket.send(json.dumps({"type": "ping", "data": {"timestamp": 1}}))
                await next_frame(socket, "pong")  # frames are handled in order: the status is stored
                await client.patch(f"{a.base}/v1/user/me/settings", json={"last_seen": "everyone"}, headers=as_alice)
                # The status_update in between sent bob nothing: the next frame is the restore.
                assert (await next_frame(watcher, "contact_status"))["data"]["status"] == "busy"
                profile = (await client.get(f"{b.base}/v1/users/{alice['user_id']}", headers=as_bob)).json()
                assert profile["status"] == "busy"
