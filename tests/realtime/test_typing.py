"""Typing indicators (contract 14) through the real ASGI application: ephemeral, throttled,
stopped by the server, and silent where groups, blocks and settings say so."""

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.services import user_update_profile
from chat import typing
from chat.services import message_send
from contacts.services import block_create, block_delete, privacy_settings_update
from groups.services import group_create, group_invite, group_member_remove
from realtime import cache
from realtime.models import EventPayload
from tests.conftest import group_of, make_user, private_chat
from tests.realtime.test_consumer import TIMEOUT, open_socket

pytestmark = pytest.mark.django_db(transaction=True)
QUIET = 0.3  # how long a socket that must get nothing is watched


@pytest.fixture(autouse=True)
def _fresh_typing_state():
    # Ids repeat across tests on SQLite, and the throttle must not carry over.
    cache.listening(False)
    typing._state_for.cache_clear()
    yield
    typing._state_for.cache_clear()


db = database_sync_to_async


def cid(conversation):
    return f"c{conversation.pk}"


async def type_in(socket, conversation, state=None):
    data = {"conversation_id": cid(conversation)}
    if state is not None:
        data["state"] = state
    await socket.send_json_to({"type": "typing", "data": data})


async def typing_frame(socket):
    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert frame["type"] == "typing", frame
    return frame


async def closed(*sockets):
    for socket in sockets:
        await socket.disconnect()


class TestRelay:
    async def test_start_reaches_the_other_members_only_ephemeral_and_unstored(self, alice, bob):
        conversation = await db(private_chat)(alice, bob)
        alice_phone, alice_laptop, bob_phone = (
            await open_socket(alice),
            await open_socket(alice),
            await open_socket(bob),
        )
        stored = await db(EventPayload.objects.count)()
        await type_in(alice_phone, conversation)  # state defaults to start
        assert await typing_frame(bob_phone) == {
            "type": "typing",
            "data": {
                "conversation_id": cid(conversation),
                "user_id": str(alice.pk),
                "user_name": "Alice",
                "state": "start",
                "expires_in": 6,
            },
        }  # no "id": not an event of the log
        assert await alice_laptop.receive_nothing(QUIET) and await alice_phone.receive_nothing(QUIET)
        assert await db(EventPayload.objects.count)() == stored  # not stored: no /v1/sync, no push
        await closed(alice_phone, alice_laptop, bob_phone)

    async def test_starts_are_throttled_per_user_and_conversation_and_stops_end_only_a_relayed_start(
        self, alice, bob, carol, monkeypatch
    ):
        monkeypatch.setattr(typing, "THROTTLE_MS", 400)
        conversation = await db(group_of)(alice, bob, carol)
        conversation = conversation.conversation
        other = await db(private_chat)(alice, bob)
        alice_socket, bob_socket = await open_socket(alice), await open_socket(bob)
        await type_in(alice_socket, conversation, "start")
        assert (await typing_frame(bob_socket))["data"]["state"] == "start"
        await type_in(alice_socket, conversation, "start")  # within the throttle: dropped, no error
        await type_in(alice_socket, other, "start")  # another conversation has its own
        assert (await typing_frame(bob_socket))["data"]["conversation_id"] == cid(other)
        await type_in(alice_socket, conversation, "stop")
        assert (await typing_frame(bob_socket))["data"]["state"] == "stop"
        await type_in(alice_socket, conversation, "stop")  # nothing shown to stop
        assert await bob_socket.receive_nothing(QUIET) and await alice_socket.receive_nothing(0)
        await db(lambda: __import__("time").sleep(0.4))()
        await type_in(alice_socket, conversation)
        assert (await typing_frame(bob_socket))["data"]["state"] == "start"
        await closed(alice_socket, bob_socket)

    @pytest.mark.parametrize(
        "data",
        [{}, {"conversation_id": "x1"}, {"conversation_id": "c1", "state": "thinking"}],
    )
    async def test_malformed_typing_is_an_error_frame(self, alice, data):
        socket = await open_socket(alice)
        await socket.send_json_to({"type": "typing", "data": data})
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["data"]["code"] == 400 and error["data"]["ref_type"] == "typing"
        await socket.disconnect()

    async def test_a_non_member_gets_an_error_and_nobody_hears_it(self, alice, bob, carol):
        conversation = await db(private_chat)(alice, bob)
        carol_socket, bob_socket = await open_socket(carol), await open_socket(bob)
        await type_in(carol_socket, conversation)
        error = await carol_socket.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["data"]["ref_type"] == "typing" and error["data"]["code"] == 400
        assert await bob_socket.receive_nothing(QUIET)
        await closed(carol_socket, bob_socket)


class TestServerSentStop:
    async def test_sending_a_message_stops_the_typing_there(self, alice, bob):
        conversation = await db(private_chat)(alice, bob)
        alice_socket, bob_socket = await open_socket(alice), await open_socket(bob)
        await type_in(alice_socket, conversation)
        await typing_frame(bob_socket)
        await db(message_send)(sender=alice, conversation_id=conversation.pk, content="hi")
        frames = [await bob_socket.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
        assert {frame["type"] for frame in frames} == {"new_message", "typing"}
        assert next(f for f in frames if f["type"] == "typing")["data"]["state"] == "stop"
        await db(message_send)(sender=alice, conversation_id=conversation.pk, content="again")
        assert (await bob_socket.receive_json_from(timeout=TIMEOUT))["type"] == "new_message"
        assert await bob_socket.receive_nothing(QUIET)  # no longer typing: no second stop
        await closed(alice_socket, bob_socket)

    async def test_the_last_socket_closing_stops_the_typing(self, alice, bob):
        conversation = await db(private_chat)(alice, bob)
        phone, laptop, bob_socket = await open_socket(alice), await open_socket(alice), await open_socket(bob)
        await type_in(phone, conversation)
        await typing_frame(bob_socket)
        await phone.disconnect()
        assert await bob_socket.receive_nothing(QUIET)  # the laptop is still connected
        await laptop.disconnect()
        frame = await typing_frame(bob_socket)
        assert frame["data"]["state"] == "stop" and frame["data"]["user_id"] == str(alice.pk)
        await bob_socket.disconnect()


def crowd(owner, count):
    users = User.objects.bulk_create([User(username=f"member{i}", email=f"m{i}@example.com") for i in range(count)])
    return group_create(owner=owner, name="Crowd", member_ids=[str(u.pk) for u in users])


class TestAudience:
    async def test_a_group_of_100_hears_it_a_group_over_100_does_not(self, alice, bob):
        group = await db(crowd)(alice, 98)
        await db(group_invite)(user=alice, group_id=group.pk, user_ids=[str(bob.pk)])  # 100 members
        alice_socket, bob_socket = await open_socket(alice), await open_socket(bob)
        await type_in(alice_socket, group.conversation)
        await typing_frame(bob_socket)
        newcomer = await db(make_user)("newcomer")
        await db(group_invite)(user=alice, group_id=group.pk, user_ids=[str(newcomer.pk)])  # 101
        for socket in (alice_socket, bob_socket):
            assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "group_update"
        await type_in(alice_socket, group.conversation, "stop")
        assert await bob_socket.receive_nothing(QUIET) and await alice_socket.receive_nothing(0)
        await closed(alice_socket, bob_socket)

    async def test_blocks_either_way_silence_it_and_unblocking_restores_it(self, alice, bob, carol, monkeypatch):
        monkeypatch.setattr(typing, "THROTTLE_MS", 1)
        conversation = (await db(group_of)(alice, bob, carol)).conversation
        alice_socket, bob_socket, carol_socket = (
            await open_socket(alice),
            await open_socket(bob),
            await open_socket(carol),
        )

        async def heard_by_bob_and_carol():
            await type_in(alice_socket, conversation)
            bob_heard = not await bob_socket.receive_nothing(QUIET) and await bob_socket.receive_json_from()
            carol_heard = not await carol_socket.receive_nothing(0.05) and await carol_socket.receive_json_from()
            return bool(bob_heard), bool(carol_heard)

        assert await heard_by_bob_and_carol() == (True, True)  # and the audience is cached now
        await db(block_create)(owner=bob, user_id=alice.pk)
        await bob_socket.receive_json_from(timeout=TIMEOUT)  # block_update
        assert await heard_by_bob_and_carol() == (False, True)
        await db(block_delete)(owner=bob, user_id=alice.pk)
        await bob_socket.receive_json_from(timeout=TIMEOUT)
        assert await heard_by_bob_and_carol() == (True, True)
        await db(block_create)(owner=alice, user_id=carol.pk)  # the typist blocks
        await alice_socket.receive_json_from(timeout=TIMEOUT)
        assert await heard_by_bob_and_carol() == (True, False)
        await closed(alice_socket, bob_socket, carol_socket)

    async def test_send_typing_off_tells_nobody_and_on_again_restores_it(self, alice, bob, monkeypatch):
        monkeypatch.setattr(typing, "THROTTLE_MS", 1)
        conversation = await db(private_chat)(alice, bob)
        alice_socket, bob_socket = await open_socket(alice), await open_socket(bob)
        await type_in(alice_socket, conversation)
        await typing_frame(bob_socket)
        await db(privacy_settings_update)(user=alice, send_typing=False)
        await type_in(alice_socket, conversation)
        assert await bob_socket.receive_nothing(QUIET)
        await db(privacy_settings_update)(user=alice, send_typing=True)
        await type_in(alice_socket, conversation)
        await typing_frame(bob_socket)
        await closed(alice_socket, bob_socket)

    async def test_membership_and_name_changes_take_effect_for_the_next_frame(self, alice, bob, carol, monkeypatch):
        monkeypatch.setattr(typing, "THROTTLE_MS", 1)
        group = await db(group_of)(alice, bob, carol)
        alice_socket, carol_socket = await open_socket(alice), await open_socket(carol)
        await type_in(alice_socket, group.conversation)
        assert (await typing_frame(carol_socket))["data"]["user_name"] == "Alice"
        await db(user_update_profile)(user=alice, nickname="Ally")
        await type_in(alice_socket, group.conversation)
        assert (await typing_frame(carol_socket))["data"]["user_name"] == "Ally"
        await db(group_member_remove)(user=alice, group_id=group.pk, target_user_id=carol.pk)
        assert (await carol_socket.receive_json_from(timeout=TIMEOUT))["type"] == "group_update"
        await type_in(alice_socket, group.conversation)
        assert await carol_socket.receive_nothing(QUIET)
        await type_in(carol_socket, group.conversation)  # no longer a member
        assert (await carol_socket.receive_json_from(timeout=TIMEOUT))["data"]["ref_type"] == "typing"
        await closed(alice_socket, carol_socket)


def relay_queries(user_id, conversation_id):
    with CaptureQueriesContext(connection) as queries:
        typing.typing_relay_rollback_unsafe(user_id=user_id, conversation_id=conversation_id)
    return len(queries)


async def test_the_relay_to_a_100_member_group_reads_no_database_once_warm(alice, bob, monkeypatch):
    monkeypatch.setattr(typing, "THROTTLE_MS", 1)
    group = await db(crowd)(alice, 98)
    await db(group_invite)(user=alice, group_id=group.pk, user_ids=[str(bob.pk)])
    bob_socket = await open_socket(bob)  # this process hears the bus: its caches are trusted
    assert await db(relay_queries)(alice.pk, group.conversation_id) > 0  # warm-up
    await typing_frame(bob_socket)
    for _ in range(3):
        await db(lambda: __import__("time").sleep(0.002))()
        assert await db(relay_queries)(alice.pk, group.conversation_id) == 0
        await typing_frame(bob_socket)
    await bob_socket.disconnect()
