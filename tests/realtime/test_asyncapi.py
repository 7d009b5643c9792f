"""docs/asyncapi.yaml (the WebSocket protocol as AsyncAPI 3) is generated from the registry of
imserver/asyncapi.py, and every recorded event matches its schema (conftest checks each test's)."""

import asyncio
import threading

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.sync.client
import websockets.sync.server
import yaml
from django.core.management import CommandError, call_command
from jsonschema import Draft202012Validator

from imserver.asyncapi import CLIENT_FRAMES, SERVER_EVENTS
from realtime import events
from realtime.management.commands.asyncapi import DOCUMENT, asyncapi_yaml
from realtime.models import EventPayload
from tests.conftest import check_event, check_frame, check_recorded_events, private_chat, send


@pytest.fixture(scope="module")
def document():
    return yaml.safe_load(asyncapi_yaml())


def test_the_committed_document_is_the_generated_one():
    assert DOCUMENT.read_text() == asyncapi_yaml(), (
        "docs/asyncapi.yaml is out of date: run `python manage.py asyncapi` and commit it"
    )
    call_command("asyncapi", "--check")


def test_check_fails_on_a_stale_document(tmp_path, monkeypatch):
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text("asyncapi: 3.0.0\n")
    monkeypatch.setattr("realtime.management.commands.asyncapi.DOCUMENT", stale)
    with pytest.raises(CommandError, match="run `python manage.py asyncapi`"):
        call_command("asyncapi", "--check")
    call_command("asyncapi")
    assert stale.read_text() == asyncapi_yaml()


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document, ref):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_document_is_an_asyncapi_3_structure(document):
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    channel = document["channels"]["ws"]
    assert channel["address"] == "/ws"
    assert set(channel["bindings"]["ws"]["query"]["properties"]) == {"token", "since"}
    refs = list(_refs(document))
    assert refs
    for ref in refs:
        _resolve(document, ref)
    operations = document["operations"]
    assert {op["action"] for op in operations.values()} == {"send", "receive"}
    for operation in operations.values():
        assert operation["channel"] == {"$ref": "#/channels/ws"}
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def _operation_types(document, action):
    (operation,) = [op for op in document["operations"].values() if op["action"] == action]
    messages = [_resolve(document, _resolve(document, ref["$ref"])["$ref"]) for ref in operation["messages"]]
    return {message["payload"]["properties"]["type"]["const"]: message for message in messages}


def test_every_registered_type_has_a_message(document):
    received = _operation_types(document, "receive")
    sent = _operation_types(document, "send")
    assert set(received) == set(SERVER_EVENTS)
    assert set(sent) == set(CLIENT_FRAMES)
    for type, (_, _, durable) in SERVER_EVENTS.items():
        payload = received[type]["payload"]
        assert ("id" in payload["properties"]) is durable, type
        assert ("id" in payload["required"]) is durable, type
        assert payload["properties"]["data"]["$ref"].startswith("#/components/schemas/")
    for message in sent.values():
        assert "id" not in message["payload"]["properties"]


def test_rest_shapes_are_reused(document):
    """new_message's data is the message the REST API returns (plus temp_id)."""
    received = _operation_types(document, "receive")
    schemas = document["components"]["schemas"]
    new_message = _resolve(document, received["new_message"]["payload"]["properties"]["data"]["$ref"])
    assert set(new_message["properties"]) == set(schemas["MessageOut"]["properties"]) | {"temp_id"}
    assert "temp_id" not in new_message["required"]
    updated = _resolve(document, received["message_updated"]["payload"]["properties"]["data"]["$ref"])
    assert updated["properties"]["message"] == {"$ref": "#/components/schemas/MessageOut"}


def test_an_event_must_match_its_schema():
    check_event("block_update", {"user_id": "12", "blocked": True})
    with pytest.raises(AssertionError, match="blocked"):
        check_event("block_update", {"user_id": "12"})
    with pytest.raises(AssertionError, match="'True' is not of type 'boolean'"):
        check_event("block_update", {"user_id": "12", "blocked": "True"})
    with pytest.raises(AssertionError, match="Additional properties"):
        check_event("block_update", {"user_id": "12", "blocked": True, "extra": 1})
    with pytest.raises(AssertionError, match="not registered"):
        check_event("made_up", {})


def test_message_status_carries_removed_by_only_as_declared():
    base = {"message_id": "m1", "conversation_id": "c1", "updated_at": "2026-01-01T00:00:00Z"}
    check_event("message_status", {**base, "status": "delivered"})
    check_event("message_status", {**base, "status": "removed", "removed_by": "sender"})
    with pytest.raises(AssertionError):
        check_event("message_status", {**base, "status": "sent"})


def test_ephemeral_frames_match(document):
    check_event("pong", {"timestamp": 1623331800000})
    check_event("error", {"code": 400, "message": "Frame is not valid JSON", "ref_type": None})
    check_event(
        "typing",
        {"conversation_id": "c1", "user_id": "2", "user_name": "Bob", "state": "start", "expires_in": 6},
    )


def test_a_received_frame_has_an_id_when_durable_only():
    check_frame({"type": "pong", "data": {"timestamp": 1}})
    check_frame({"id": "7", "type": "block_update", "data": {"user_id": "12", "blocked": False}})
    with pytest.raises(AssertionError, match="id when durable only"):
        check_frame({"id": "8", "type": "pong", "data": {"timestamp": 1}})
    with pytest.raises(AssertionError, match="id when durable only"):
        check_frame({"type": "block_update", "data": {"user_id": "12", "blocked": False}})


@pytest.mark.django_db
def test_recorded_events_are_checked_with_their_own_data(user, other_user):
    send(user, private_chat(user, other_user), temp_id="t-1")  # own_data carries temp_id
    check_recorded_events()
    events.record(events.Event([user.pk], "block_update", {"user_id": str(other_user.pk)}))
    with pytest.raises(AssertionError, match="block_update event"):
        check_recorded_events()
    EventPayload.objects.filter(type="block_update").delete()  # so this test's own check passes
    events.record(events.Event([user.pk], "unheard_of", {}))
    with pytest.raises(AssertionError, match="not registered"):
        check_recorded_events()
    EventPayload.objects.filter(type="unheard_of").delete()


BAD_FRAME = '{"id":"3","type":"block_update","data":{"user_id":"12"}}'  # no "blocked"


async def test_a_frame_from_a_real_server_is_checked_as_it_is_read(_received_frames_match_their_schemas):
    """The websockets client the real-server tests read with (tests/servers.py) checks each frame,
    however it is read; the server here is a websockets one speaking the protocol's frames."""

    async def serve(connection):
        await connection.send('{"type":"pong","data":{"timestamp":1}}')
        await connection.send(BAD_FRAME)
        await connection.send("not json")
        await connection.wait_closed()

    async with websockets.asyncio.server.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(5), websockets.asyncio.client.connect(f"ws://127.0.0.1:{port}") as socket:
            assert "pong" in await socket.recv()
            with pytest.raises(AssertionError, match="block_update event .* does not match its schema"):
                async for _ in socket:  # iteration reads through recv too
                    pass
            with pytest.raises(AssertionError, match="is not JSON"):
                await socket.recv()
    assert len(_received_frames_match_their_schemas) == 2  # the test would fail at its end
    _received_frames_match_their_schemas.clear()


def test_a_frame_read_by_the_sync_client_is_checked(_received_frames_match_their_schemas):
    def serve(connection):
        connection.send(BAD_FRAME)
        connection.recv()  # until the client closes

    with websockets.sync.server.serve(serve, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        address = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        with (
            websockets.sync.client.connect(address) as socket,
            pytest.raises(AssertionError, match="does not match its schema"),
        ):
            socket.recv(timeout=5)
        server.shutdown()
    assert _received_frames_match_their_schemas
    _received_frames_match_their_schemas.clear()
