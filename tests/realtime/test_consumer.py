"""The WebSocket protocol (contract 7) through the real ASGI application."""

import asyncio
import json
import os
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import OperationalError
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.services import user_mark_banned, user_password_change
from accounts.tokens import token_pair_for
from chat.models import Membership
from chat.services import message_send
from contacts.models import Contact
from groups.services import group_invite, group_member_remove
from imserver.asgi import application
from privacy.services import user_delete
from realtime import bus, consumers
from realtime.bus import hub
from realtime.models import EventPayload
from realtime.services import events_prune
from tests.conftest import PASSWORD, group_of, make_user, private_chat

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 3


@pytest.fixture(autouse=True)
def _fresh_hub():
    yield
    hub.connections.clear()


token_for = database_sync_to_async(lambda user: token_pair_for(user)["token"])
send_message = database_sync_to_async(
    lambda sender, conversation, content, **kw: message_send(
        sender=sender, conversation_id=conversation.pk, content=content, **kw
    )[0]
)


async def open_socket(user=None, *, token=None, query="", headers=(), subprotocols=None, path="/ws", ready=True):
    token = token if token is not None else await token_for(user)
    separator = "&" if query else ""
    communicator = WebsocketCommunicator(
        application, f"{path}?token={token}{separator}{query}", headers=list(headers), subprotocols=subprotocols
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    if ready:
        # Frames are handled after the connect handler finishes: a pong means the socket has
        # caught up, gone live and counted in presence.
        await communicator.send_json_to({"type": "ping", "data": {"timestamp": 0}})
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {"type": "pong", "data": {"timestamp": 0}}
    return communicator


async def eventually(check, timeout=TIMEOUT):
    """Polls a database condition (presence settles in the background after connect)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await database_sync_to_async(check)():
            return True
        await asyncio.sleep(0.05)
    return False


async def expect_close(communicator, code):
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message == {"type": "websocket.close", "code": code}, message


async def frames(communicator, count):
    return [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(count)]


async def next_of_type(communicator, type, limit=10):
    for _ in range(limit):
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        if frame["type"] == type:
            return frame
    raise AssertionError(f"no {type} frame")


class TestHandshake:
    async def test_ping_pong(self, alice):
        socket = await open_socket(alice)
        await socket.send_json_to({"type": "ping", "data": {"timestamp": 1623331800000}})
        assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong", "data": {"timestamp": 1623331800000}}
        await socket.disconnect()

    async def test_v1_path(self, alice):
        socket = await open_socket(alice, path="/v1/ws")
        await socket.send_json_to({"type": "ping", "data": {"timestamp": 5}})
        assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await socket.disconnect()

    async def test_token_in_subprotocol(self, alice):
        token = await token_for(alice)
        communicator = WebsocketCommunicator(application, "/ws", subprotocols=["imserver", f"bearer.{token}"])
        connected, subprotocol = await communicator.connect(timeout=TIMEOUT)
        assert connected and subprotocol == "imserver"
        await communicator.send_json_to({"type": "ping", "data": {"timestamp": 1}})
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await communicator.disconnect()

    async def test_a_token_offered_alone_is_never_echoed_back(self, alice):
        token = await token_for(alice)
        communicator = WebsocketCommunicator(application, "/ws", subprotocols=[f"bearer.{token}"])
        connected, subprotocol = await communicator.connect(timeout=TIMEOUT)
        assert connected and subprotocol is None
        await communicator.send_json_to({"type": "ping", "data": {"timestamp": 1}})
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await communicator.disconnect()

    @pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
    async def test_bad_token_closes_4401(self, alice, token):
        communicator = WebsocketCommunicator(application, f"/ws?token={token}")
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert connected  # accepted first, so that the app sees the code
        await expect_close(communicator, 4401)

    async def test_expired_refresh_revoked_and_banned_close_4401(self, alice):
        expired = AccessToken.for_user(alice)
        expired["ver"] = 0
        expired.set_exp(from_time=timezone.now() - timedelta(hours=1))
        refresh = await database_sync_to_async(lambda: token_pair_for(alice)["refresh_token"])()
        revoked = await token_for(alice)
        await database_sync_to_async(user_password_change)(
            user=alice, old_password=PASSWORD, new_password="N3w-secret!!", address="127.0.0.1"
        )
        banned_user = await database_sync_to_async(make_user)("banned")
        banned = await token_for(banned_user)
        await database_sync_to_async(User.objects.filter(pk=banned_user.pk).update)(is_banned=True)
        for token in (str(expired), refresh, revoked, banned):
            communicator = WebsocketCommunicator(application, f"/ws?token={token}")
            assert (await communicator.connect(timeout=TIMEOUT))[0]
            await expect_close(communicator, 4401)

    async def test_browser_origin_must_be_allowed(self, alice):
        socket = await open_socket(alice, headers=[(b"origin", b"http://localhost:3000")])
        await socket.disconnect()
        token = await token_for(alice)
        evil = WebsocketCommunicator(application, f"/ws?token={token}", headers=[(b"origin", b"https://evil.example")])
        connected, _ = await evil.connect(timeout=TIMEOUT)
        assert not connected

    async def test_extra_allowed_origin(self, alice, settings):
        settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://app.example.com"]
        socket = await open_socket(alice, headers=[(b"origin", b"https://app.example.com")])
        await socket.disconnect()


def database_down(user_id, data):
    raise OperationalError("connection refused")


class TestClientFrames:
    @pytest.mark.parametrize(
        "raw, ref_type",
        [
            ("not json", None),
            ("[1, 2]", None),
            ('{"data": {}}', None),
            ('{"type": "dance", "data": {}}', "dance"),
            ('{"type": "ping", "data": []}', "ping"),
            ('{"type": "ping", "data": {}}', "ping"),
            ('{"type": "message_read", "data": {}}', "message_read"),
            ('{"type": "message_read", "data": {"conversation_id": "c1", "message_id": "x"}}', "message_read"),
            ('{"type": "status_update", "data": {"status": "sleeping"}}', "status_update"),
        ],
    )
    async def test_malformed_frames_get_error_and_socket_stays(self, alice, raw, ref_type):
        socket = await open_socket(alice)
        await socket.send_to(text_data=raw)
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error"
        assert error["data"]["code"] == 400 and error["data"]["message"]
        assert error["data"]["ref_type"] == ref_type
        await socket.send_json_to({"type": "ping", "data": {"timestamp": 2}})
        assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await socket.disconnect()

    async def test_binary_frame_is_an_error(self, alice):
        socket = await open_socket(alice)
        await socket.send_to(bytes_data=b"\x00\x01")
        assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "error"
        await socket.disconnect()

    async def test_foreign_conversation_is_an_error(self, alice, bob, carol):
        conversation = await database_sync_to_async(private_chat)(bob, carol)
        message = await send_message(bob, conversation, "secret")
        socket = await open_socket(alice)
        frame = {"conversation_id": f"c{conversation.pk}", "message_id": f"m{message.pk}"}
        await socket.send_json_to({"type": "message_read", "data": frame})
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["data"]["ref_type"] == "message_read"
        await socket.disconnect()

    async def test_a_frame_the_database_fails_gets_a_503_error_and_the_socket_stays(self, alice, monkeypatch):
        monkeypatch.setitem(consumers.FRAME_HANDLERS, "status_update", f"{__name__}.database_down")
        socket = await open_socket(alice)
        await socket.send_json_to({"type": "status_update", "data": {"status": "away"}})
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["data"]["code"] == 503
        assert error["data"]["ref_type"] == "status_update"
        await socket.send_json_to({"type": "ping", "data": {"timestamp": 2}})
        assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await socket.disconnect()

    async def test_oversized_frame_closes_1009(self, alice):
        socket = await open_socket(alice)
        await socket.send_to(text_data=json.dumps({"type": "ping", "data": {"pad": "x" * 70_000}}))
        await expect_close(socket, 1009)

    async def test_flood_closes_4429(self, alice):
        socket = await open_socket(alice)
        for _ in range(150):
            await socket.send_to(text_data='{"type": "ping", "data": {"timestamp": 1}}')
        for _ in range(150):
            message = await socket.receive_output(timeout=TIMEOUT)
            if message["type"] == "websocket.close":
                assert message["code"] == 4429
                return
        raise AssertionError("a flood of frames did not close the socket")

    async def test_message_read_sends_status_to_sender(self, alice, bob):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        message = await send_message(alice, conversation, "read me")
        alice_socket = await open_socket(alice)
        bob_socket = await open_socket(bob)
        frame = {"conversation_id": f"c{conversation.pk}", "message_id": f"m{message.pk}"}
        await bob_socket.send_json_to({"type": "message_read", "data": frame})
        status = await next_of_type(alice_socket, "message_status")
        assert status["data"]["message_id"] == f"m{message.pk}" and status["data"]["status"] == "read"
        assert status["id"]
        pointer = await database_sync_to_async(
            lambda: Membership.objects.get(conversation=conversation, user=bob).last_read_seq
        )()
        assert pointer == message.seq
        await alice_socket.disconnect()
        await bob_socket.disconnect()

    async def test_status_update_reaches_watchers(self, alice, bob):
        await database_sync_to_async(Contact.objects.create)(owner=bob, user=alice)
        bob_socket = await open_socket(bob)
        alice_socket = await open_socket(alice)
        online = await next_of_type(bob_socket, "contact_status")
        assert online["data"]["status"] == "online"
        await alice_socket.send_json_to(
            {"type": "status_update", "data": {"status": "busy", "custom_message": "Meeting"}}
        )
        frame = await next_of_type(bob_socket, "contact_status")
        assert frame["data"] == {
            "user_id": str(alice.pk),
            "status": "busy",
            "last_online": None,
            "custom_message": "Meeting",
        }
        await alice_socket.disconnect()
        offline = await next_of_type(bob_socket, "contact_status")
        assert offline["data"]["status"] == "offline" and offline["data"]["last_online"]
        await bob_socket.disconnect()
        refreshed = await database_sync_to_async(User.objects.get)(pk=alice.pk)
        assert (refreshed.chosen_status, refreshed.status_message, refreshed.is_online) == ("busy", "Meeting", False)


class TestServerEvents:
    async def test_new_message_reaches_every_device_of_every_member(self, alice, bob):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        phone, tablet = await open_socket(alice), await open_socket(alice)
        bob_socket = await open_socket(bob)
        message = await send_message(alice, conversation, "hi", temp_id="tmp-1")
        for socket in (phone, tablet):
            frame = await next_of_type(socket, "new_message")
            assert frame["data"]["message_id"] == f"m{message.pk}" and frame["data"]["temp_id"] == "tmp-1"
        frame = await next_of_type(bob_socket, "new_message")
        assert frame["data"]["content"] == "hi" and "temp_id" not in frame["data"]
        for socket in (phone, tablet, bob_socket):
            await socket.disconnect()

    async def test_event_ids_increase_per_user(self, alice, bob):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        socket = await open_socket(bob)
        for n in range(5):
            await send_message(alice, conversation, f"n{n}")
        received = await frames(socket, 5)
        ids = [int(frame["id"]) for frame in received]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert [frame["data"]["content"] for frame in received] == [f"n{n}" for n in range(5)]
        await socket.disconnect()

    async def test_group_membership_changes_are_live(self, alice, bob, carol):
        group = await database_sync_to_async(group_of)(alice, bob)
        carol_socket = await open_socket(carol)
        bob_socket = await open_socket(bob)
        await database_sync_to_async(group_invite)(user=alice, group_id=group.pk, user_ids=[str(carol.pk)])
        update = await next_of_type(carol_socket, "group_update")
        assert update["data"]["update_type"] == "new_member" and update["data"]["user_id"] == str(carol.pk)
        await send_message(alice, group.conversation, "welcome carol")
        assert (await next_of_type(carol_socket, "new_message"))["data"]["content"] == "welcome carol"
        await database_sync_to_async(group_member_remove)(user=alice, group_id=group.pk, target_user_id=carol.pk)
        removed = await next_of_type(carol_socket, "group_update")
        assert removed["data"]["update_type"] == "member_removed"
        await send_message(alice, group.conversation, "carol is gone")
        assert (await next_of_type(bob_socket, "new_message"))["data"]["content"] == "welcome carol"
        assert (await next_of_type(bob_socket, "new_message"))["data"]["content"] == "carol is gone"
        assert await carol_socket.receive_nothing(timeout=0.3)
        await carol_socket.disconnect()
        await bob_socket.disconnect()

    async def test_a_lost_bus_message_is_filled_from_the_log(self, alice, bob, monkeypatch):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        socket = await open_socket(bob)
        original = bus.publish
        dropped = []

        def lossy(messages):
            if not dropped:
                dropped.append(messages)
                return
            original(messages)

        monkeypatch.setattr(bus, "publish", lossy)
        await send_message(alice, conversation, "lost on the bus")
        await send_message(alice, conversation, "arrives")
        first, second = await frames(socket, 2)
        assert [first["data"]["content"], second["data"]["content"]] == ["lost on the bus", "arrives"]
        assert int(second["id"]) == int(first["id"]) + 1
        await socket.disconnect()

    async def test_resync_after_bus_reconnect(self, alice, bob, monkeypatch):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        socket = await open_socket(bob)
        monkeypatch.setattr(bus, "publish", lambda messages: None)  # the bus is down
        await send_message(alice, conversation, "while the bus was down")
        assert await socket.receive_nothing(timeout=0.2)
        for connection in list(hub.connections[bob.pk]):
            connection.resync()
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        assert frame["data"]["content"] == "while the bus was down"
        await socket.disconnect()


class TestResume:
    async def test_since_replays_then_goes_live_without_gap_or_duplicate(self, alice, bob):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        first = await open_socket(bob)
        await send_message(alice, conversation, "m0")
        seen = await first.receive_json_from(timeout=TIMEOUT)
        await first.disconnect()
        for n in range(1, 4):
            await send_message(alice, conversation, f"m{n}")
        # Resume while more messages are being sent.
        sending = asyncio.ensure_future(
            asyncio.gather(*[send_message(alice, conversation, f"m{n}") for n in range(4, 10)])
        )
        resumed = await open_socket(bob, query=f"since={seen['id']}", ready=False)
        await sending
        received = await frames(resumed, 9)
        assert [f["data"]["content"] for f in received if f["type"] == "new_message"] == [f"m{n}" for n in range(1, 10)]
        assert [int(f["id"]) for f in received] == list(range(int(seen["id"]) + 1, int(seen["id"]) + 10))
        assert await resumed.receive_nothing(timeout=0.3)
        await resumed.disconnect()

    @pytest.mark.parametrize("since", ["abc", "-1", "999"])
    async def test_bad_since_closes_4400(self, alice, since):
        socket = await open_socket(alice, query=f"since={since}", ready=False)
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["data"]["code"] == 400
        await expect_close(socket, 4400)

    async def test_since_older_than_retention_closes_4410(self, alice, bob):
        conversation = await database_sync_to_async(private_chat)(alice, bob)
        for n in range(3):
            await send_message(alice, conversation, f"old {n}")
        await database_sync_to_async(EventPayload.objects.update)(created_at=timezone.now() - timedelta(days=8))
        await database_sync_to_async(events_prune)()
        socket = await open_socket(bob, query="since=1", ready=False)
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert error["data"]["code"] == 410
        await expect_close(socket, 4410)


class TestServerCloses:
    async def test_ban_closes_sockets_4403(self, alice):
        socket = await open_socket(alice)
        await database_sync_to_async(user_mark_banned)(user=alice, reason="spam")
        await expect_close(socket, 4403)

    async def test_account_deletion_closes_sockets_4401(self, alice):
        socket = await open_socket(alice)
        await database_sync_to_async(user_delete)(user=alice)
        await expect_close(socket, 4401)

    async def test_password_change_closes_sockets_4401(self, alice):
        socket = await open_socket(alice)
        await database_sync_to_async(user_password_change)(
            user=alice, old_password=PASSWORD, new_password="N3w-secret!!", address="127.0.0.1"
        )
        await expect_close(socket, 4401)

    async def test_token_expiry_closes_4401(self, alice, settings):
        token = AccessToken.for_user(alice)
        token["ver"] = 0
        token.set_exp(lifetime=timedelta(seconds=1))
        socket = await open_socket(token=str(token), ready=False)
        await expect_close(socket, 4401)


class TestPresence:
    async def test_online_while_any_socket_is_open(self, alice, bob):
        await database_sync_to_async(Contact.objects.create)(owner=bob, user=alice)
        watcher = await open_socket(bob)
        phone = await open_socket(alice)
        assert (await next_of_type(watcher, "contact_status"))["data"]["status"] == "online"
        tablet = await open_socket(alice)
        await phone.disconnect()
        assert await eventually(lambda: User.objects.get(pk=alice.pk).is_online)
        assert await watcher.receive_nothing(timeout=0.3)  # no flapping for a second device
        await tablet.disconnect()
        offline = await next_of_type(watcher, "contact_status")
        assert offline["data"]["status"] == "offline"
        refreshed = await database_sync_to_async(User.objects.get)(pk=alice.pk)
        assert not refreshed.is_online and refreshed.last_online is not None
        await watcher.disconnect()

    async def test_away_persists_across_reconnects(self, alice):
        socket = await open_socket(alice)
        await socket.send_json_to({"type": "status_update", "data": {"status": "away"}})
        await socket.send_json_to({"type": "ping", "data": {"timestamp": 1}})
        await socket.receive_json_from(timeout=TIMEOUT)
        await socket.disconnect()
        again = await open_socket(alice)
        assert await eventually(lambda: User.objects.get(pk=alice.pk).status == "away")
        await again.disconnect()

    async def test_a_failed_presence_update_still_counts_the_socket_out(self, alice, monkeypatch):
        from presence.registry import presence

        original = presence.apply

        async def apply_fails_once(user_id):
            monkeypatch.setattr(presence, "apply", original)
            raise RuntimeError("database gone")

        monkeypatch.setattr(presence, "apply", apply_fails_once)
        socket = await open_socket(alice)
        assert alice.pk in presence.local.values()
        await socket.disconnect()
        assert alice.pk not in presence.local.values()  # else heartbeats would keep it online


class TestPresenceHealing:
    async def test_reconcile_takes_offline_users_without_sockets(self, alice, bob):
        from presence.registry import presence

        await database_sync_to_async(Contact.objects.create)(owner=bob, user=alice)
        watcher = await open_socket(bob)
        # As after a crash of a single-process server: the database still says online.
        await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(is_online=True)
        await presence.reconcile()
        offline = await next_of_type(watcher, "contact_status")
        assert offline["data"]["user_id"] == str(alice.pk) and offline["data"]["status"] == "offline"
        assert await eventually(lambda: User.objects.get(pk=bob.pk).is_online)  # his own socket
        await watcher.disconnect()

    async def test_heartbeat_brings_online_a_socket_the_database_shows_offline(self, alice, bob):
        from presence.registry import presence

        await database_sync_to_async(Contact.objects.create)(owner=bob, user=alice)
        watcher = await open_socket(bob)
        phone = await open_socket(alice)
        assert (await next_of_type(watcher, "contact_status"))["data"]["status"] == "online"
        # As when alice connected while Redis was unreachable (her socket could not be counted),
        # or another process reconciled after a Redis restart before our heartbeat.
        await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(is_online=False)
        await presence.heartbeat()
        online = await next_of_type(watcher, "contact_status")
        assert online["data"]["user_id"] == str(alice.pk) and online["data"]["status"] == "online"
        assert (await database_sync_to_async(User.objects.get)(pk=alice.pk)).is_online
        await phone.disconnect()
        await watcher.disconnect()

    @pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="a Redis restart needs Redis")
    async def test_heartbeat_restores_presence_after_a_redis_restart(self, alice):
        import redis as redis_client

        from presence.registry import presence

        socket = await open_socket(alice)
        client = redis_client.Redis.from_url(os.environ["REDIS_URL"])
        client.flushdb()  # what a restart without persistence leaves
        assert client.scard(f"presence:{alice.pk}") == 0
        await presence.heartbeat()
        assert client.scard(f"presence:{alice.pk}") == 1
        await socket.disconnect()
        assert client.scard(f"presence:{alice.pk}") == 0


class TestConnectFailure:
    async def test_a_failed_connect_leaves_nothing_in_the_hub(self, alice, monkeypatch):
        from realtime import consumers

        async def broken_catch_up(self, upto=None):
            raise RuntimeError("database gone")

        monkeypatch.setattr(consumers.EventConsumer, "_catch_up", broken_catch_up)
        token = await token_for(alice)
        communicator = WebsocketCommunicator(application, f"/ws?token={token}&since=0")
        await communicator.connect(timeout=TIMEOUT)  # accepted before the failure
        with pytest.raises(RuntimeError, match="database gone"):
            await communicator.wait(timeout=TIMEOUT)
        assert alice.pk not in hub.connections


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the subscriber needs Redis")
async def test_sockets_let_in_while_redis_was_down_are_resynced_once_it_subscribes(monkeypatch):
    import redis.asyncio

    real_from_url = redis.asyncio.Redis.from_url

    def client_failing_once(*args, **kwargs):
        client = real_from_url(*args, **kwargs)
        real_pubsub = client.pubsub

        def pubsub():
            monkeypatch.setattr(client, "pubsub", real_pubsub)
            raise redis.ConnectionError("Redis is still starting")

        monkeypatch.setattr(client, "pubsub", pubsub)
        return client

    monkeypatch.setattr(redis.asyncio.Redis, "from_url", client_failing_once)
    resynced = asyncio.Event()

    class Socket:
        def resync(self):
            resynced.set()

    fresh = bus.Hub()
    await asyncio.wait_for(fresh.start(), TIMEOUT)  # let in, though not yet subscribed
    fresh.register(1, Socket())
    await asyncio.wait_for(resynced.wait(), TIMEOUT)
    fresh._subscriber.cancel()


def test_the_bus_channel_is_scoped_to_the_redis_database(settings):
    from realtime.bus import channel_name

    settings.REDIS_URL = "redis://127.0.0.1:6379/3"
    three = channel_name()
    settings.REDIS_URL = "redis://127.0.0.1:6379/4"
    assert channel_name() != three and channel_name().endswith(":4:bus")


class TestReordering:
    async def test_events_published_out_of_order_are_put_back_in_order_without_the_log(self, alice, bob, monkeypatch):
        """Two processes may publish in another order than they committed: the socket waits a
        moment for the earlier event instead of reading the log."""
        from realtime import consumers

        conversation = await database_sync_to_async(private_chat)(alice, bob)
        socket = await open_socket(bob)
        held_back = []
        original = bus.publish

        def swap_pairs(messages):
            if not held_back:
                held_back.extend(messages)  # the first commit publishes last
                return
            original(messages)
            original(held_back)

        reads = []
        events_after = consumers.selectors.events_after
        monkeypatch.setattr(consumers.selectors, "events_after", lambda **kw: reads.append(kw) or events_after(**kw))
        monkeypatch.setattr(bus, "publish", swap_pairs)
        await send_message(alice, conversation, "first")
        await send_message(alice, conversation, "second")
        first, second = await frames(socket, 2)
        assert [first["data"]["content"], second["data"]["content"]] == ["first", "second"]
        assert int(second["id"]) == int(first["id"]) + 1
        assert reads == []  # put in order from what the bus brought, not read from the log
        await socket.disconnect()
