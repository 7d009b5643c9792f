"""Shared fixtures: users, authenticated API clients that check every response against the
served OpenAPI schema, the same check of every recorded event and received frame against its
AsyncAPI schema (imserver/asyncapi.py), and helpers to read the realtime events a change recorded."""

import copy

import orjson
import pytest
import websockets.asyncio.client
import websockets.sync.client
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIResponse
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from rest_framework.test import APIClient
from werkzeug.datastructures import Headers, ImmutableMultiDict

from accounts.models import Device, User
from accounts.tokens import token_pair_for
from imserver.asyncapi import SERVER_EVENTS, json_schemas
from realtime.models import EventPayload, UserEvent

PASSWORD = "Sup3r-secret!"


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.RATE_LIMITS_ENABLED = False
    settings.MEDIA_ROOT = tmp_path / "storage"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _flush_cascades_to_the_search_index():
    """Transactional tests end with a TRUNCATE of the models' tables; on PostgreSQL the message
    search index (a table of chat's migrations, not a model: chat/search.py) references
    chat_message, so the TRUNCATE must cascade to it."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    sql_flush = DatabaseOperations.sql_flush

    def cascading_sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        return sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=True)

    DatabaseOperations.sql_flush = cascading_sql_flush
    yield
    DatabaseOperations.sql_flush = sql_flush


@pytest.fixture(scope="session", autouse=True)
def _close_the_pool_before_the_test_database_goes(django_db_setup, django_db_blocker):
    """Worker threads (the consumers' database calls) keep connections, idle or checked out of
    the pool; end them before pytest-django drops the test database, which refuses while
    sessions remain."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            connection.close_pool()


_openapi = None


def openapi():
    global _openapi
    if _openapi is None:
        _openapi = OpenAPI.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    return _openapi


class _OpenAPIRequest:
    """What openapi-core needs of a request to find its operation (the path is matched, not routed)."""

    def __init__(self, request):
        self.host_url = "http://testserver"
        self.path = request.path
        self.path_pattern = None
        self.method = request.method.lower()
        self.body = b""
        self.content_type = request.META.get("CONTENT_TYPE", "")
        self.parameters = RequestParameters(
            path={},
            query=ImmutableMultiDict(request.GET),
            header=Headers(request.headers.items()),
            cookie=ImmutableMultiDict(),
        )


class SchemaCheckedClient(APIClient):
    """An API client whose every /v1 response must match the OpenAPI schema we serve."""

    def request(self, **kwargs):
        response = super().request(**kwargs)
        if response.wsgi_request.path.startswith("/v1/") and "/schema" not in response.wsgi_request.path:
            try:
                openapi().validate_response(_OpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response))
            except (PathNotFound, OperationNotFound):
                # Only a request to no route (or no such method) may miss the schema.
                assert response.status_code in (404, 405), response.wsgi_request.path
        return response


_event_validators = None


def _closed(schema):
    """The schema with every object closed (additionalProperties false): an event must carry
    exactly the fields its schema declares, none it forgot."""
    if isinstance(schema, dict):
        schema = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_closed(value) for value in schema]
    return schema


def event_validators():
    """Server event type -> a JSON Schema 2020-12 validator of its data (imserver/asyncapi.py)."""
    global _event_validators
    if _event_validators is None:
        schemas, events, _ = json_schemas()
        components = {"components": {"schemas": _closed(copy.deepcopy(schemas))}}
        _event_validators = {
            type: Draft202012Validator({**components, "$ref": f"#/components/schemas/{name}"})
            for type, name in events.items()
        }
    return _event_validators


def check_event(type, data):
    """Fails unless data is a valid `type` event (a registered one)."""
    validator = event_validators().get(type)
    assert validator is not None, f"event type {type!r} is not registered in imserver/asyncapi.py"
    errors = sorted(validator.iter_errors(data), key=lambda error: list(error.absolute_path))
    assert not errors, f"{type} event {data} does not match its schema: " + "; ".join(
        f"{'/'.join(map(str, error.absolute_path)) or '(data)'}: {error.message}" for error in errors
    )


def check_frame(frame):
    """Fails unless a frame the server sent is a valid registered event, with an id when durable."""
    check_event(frame["type"], frame["data"])
    assert ("id" in frame) is SERVER_EVENTS[frame["type"]][2], f"{frame['type']} frame {frame}: id when durable only"


def check_raw_frame(raw):
    """check_frame of a frame as it came over a real socket (text or bytes): it must be JSON."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AssertionError(f"frame {raw[:200]!r} is not JSON") from None
    assert isinstance(frame, dict) and {"type", "data"} <= frame.keys(), f"frame {frame} lacks type or data"
    check_frame(frame)


@pytest.fixture(autouse=True)
def _received_frames_match_their_schemas(monkeypatch):
    """Every frame a test receives, ephemeral ones too, is checked as it arrives: from the
    in-process consumer (WebsocketCommunicator) and from real server processes (tests/servers.py:
    the `websockets` client, asyncio and sync, whichever helper reads it). A violation fails the
    read, and the test at its end too, should a helper's background task have swallowed it.
    Yields the list of violations seen (a test that provokes one clears it)."""
    violations = []
    receive = WebsocketCommunicator.receive_json_from
    recv_async = websockets.asyncio.client.ClientConnection.recv
    recv_sync = websockets.sync.client.ClientConnection.recv

    async def receive_checked(self, timeout=1):
        frame = await receive(self, timeout)
        check_frame(frame)
        return frame

    def checked(raw):
        try:
            check_raw_frame(raw)
        except AssertionError as exc:
            violations.append(str(exc))
            raise
        return raw

    async def recv_checked(self, decode=None):
        return checked(await recv_async(self, decode))

    def recv_sync_checked(self, timeout=None, decode=None):
        return checked(recv_sync(self, timeout, decode))

    monkeypatch.setattr(WebsocketCommunicator, "receive_json_from", receive_checked)
    monkeypatch.setattr(websockets.asyncio.client.ClientConnection, "recv", recv_checked)
    monkeypatch.setattr(websockets.sync.client.ClientConnection, "recv", recv_sync_checked)
    yield violations
    assert not violations, "frames received from a server do not match their schemas: " + "; ".join(violations)


@pytest.fixture(autouse=True)
def _recorded_events_match_their_schemas(request):
    """Every event a test recorded (data and own_data) is validated at its end, as every REST
    response is: one query, on the test's database before it is rolled back or flushed."""
    if "_django_db_helper" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("_django_db_helper")  # torn down after this fixture: the rows are still there
    yield
    if not connection.needs_rollback:  # else the test broke its transaction: nothing can be read
        check_recorded_events()


def check_recorded_events():
    """Validates every stored event payload (data and own_data) against its type's schema."""
    for type, data, own_data in EventPayload.objects.values_list("type", "data", "own_data"):
        check_event(type, orjson.loads(data))
        if own_data is not None:
            check_event(type, orjson.loads(own_data))


def make_user(username, password=PASSWORD, **extra):
    extra.setdefault("email", f"{username}@example.com")
    extra.setdefault("nickname", username.capitalize())
    user = User(username=username, **extra)
    user.set_password(password)
    user.save()
    return user


def session_tokens(user, **device):
    """A token pair of a new device (login session) of the user, as a login issues."""
    return token_pair_for(user, Device.objects.create(user=user, **device).pk)


def client_for(user=None, tokens=None):
    client = SchemaCheckedClient()
    if user is not None:
        tokens = tokens or session_tokens(user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['token']}")
    return client


@pytest.fixture
def api():
    return client_for()


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other_user(db):
    return make_user("bob")


@pytest.fixture
def stranger(db):
    return make_user("mallory")


@pytest.fixture
def user_api(user):
    return client_for(user)


# The people above, by the names conversations read best with (tests that stage one).
@pytest.fixture
def alice(user):
    return user


@pytest.fixture
def bob(other_user):
    return other_user


@pytest.fixture
def carol(stranger):
    return stranger


def events_of(user, type=None):
    """The user's recorded change events, oldest first, as frames {"id", "type", "data"}."""
    rows = UserEvent.objects.filter(user=user).select_related("payload").order_by("seq")
    frames = []
    for row in rows:
        payload = row.payload
        data = payload.own_data if payload.own_data is not None and payload.own_user_id == user.pk else payload.data
        if type is None or payload.type == type:
            frames.append({"id": str(row.seq), "type": payload.type, "data": orjson.loads(data)})
    return frames


def is_postgres():
    return connection.vendor == "postgresql"


def private_chat(a, b):
    from chat.services import private_conversation_open

    return private_conversation_open(user=a, target_user_id=b.pk)[0]


def send(sender, conversation, content="hello", **extra):
    from chat.services import message_send

    return message_send(sender=sender, conversation_id=conversation.pk, content=content, **extra)[0]


def group_of(owner, *members, name="Team"):
    from groups.services import group_create

    return group_create(owner=owner, name=name, member_ids=[str(m.pk) for m in members])
