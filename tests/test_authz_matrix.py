"""Who may do what, for every /v1 route the URL resolver knows.

The routes come from the resolver, so a new route without a row here fails
`test_every_route_has_a_row`. Each row names what anonymous callers, strangers and the members
of a group (member, admin, owner) get.
"""

import re
from dataclasses import dataclass, field

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import Device
from calls.services import call_start
from chat.models import Membership
from tests.conftest import PASSWORD, client_for, group_of, make_user, private_chat, send

PUBLIC = "public"  # no token needed: not part of the matrix


@dataclass
class Row:
    path: str  # with {group}, {conversation}, {message}, {member}, {call}, {self} placeholders
    body: dict = field(default_factory=dict)
    anonymous: int | str = 401
    stranger: int | None = None  # None: like member (routes about one's own data)
    member: int | None = None
    admin: int | None = None
    owner: int | None = None
    format: str = "json"


MATRIX = {
    ("auth/register", "POST"): Row("", anonymous=PUBLIC),
    ("auth/login", "POST"): Row("", anonymous=PUBLIC),
    ("auth/refresh", "POST"): Row("", anonymous=PUBLIC),
    ("auth/logout", "POST"): Row("", anonymous=PUBLIC),
    ("auth/oauth/{provider}", "POST"): Row("", anonymous=PUBLIC),
    ("auth/password/reset", "POST"): Row("", anonymous=PUBLIC),
    ("auth/password/reset/confirm", "POST"): Row("", anonymous=PUBLIC),
    ("schema", "GET"): Row("", anonymous=PUBLIC),
    ("docs", "GET"): Row("", anonymous=PUBLIC),
    ("capabilities", "GET"): Row("/v1/capabilities", member=200),
    ("auth/password/change", "POST"): Row("/v1/auth/password/change", {}, member=400),
    ("user/me", "GET"): Row("/v1/user/me", member=200),
    ("user/me", "PATCH"): Row("/v1/user/me", {"status_message": "hi"}, member=200),
    ("user/me", "DELETE"): Row("/v1/user/me", {"password": "Sup3r-secret!"}, member=204),
    ("reports", "POST"): Row(
        "/v1/reports", {"target_type": "message", "target_id": "{message}", "reason": "spam"}, stranger=404, member=201
    ),
    ("users/search", "GET"): Row("/v1/users/search?query=o", member=200),
    ("users/{user_id}", "GET"): Row("/v1/users/{member}", member=200),
    ("contacts", "GET"): Row("/v1/contacts", member=200),
    ("contacts", "POST"): Row("/v1/contacts", {"user_id": "{owner}"}, member=409, owner=400, stranger=201, admin=201),
    ("contacts/{user_id}", "PATCH"): Row(
        "/v1/contacts/{owner}", {"remark": "x"}, member=200, stranger=404, admin=404, owner=404
    ),
    ("contacts/{user_id}", "DELETE"): Row("/v1/contacts/{owner}", member=204, stranger=404, admin=404, owner=404),
    ("blocks", "GET"): Row("/v1/blocks", member=200),
    ("blocks/{user_id}", "PUT"): Row("/v1/blocks/{target}", member=204),
    ("blocks/{user_id}", "DELETE"): Row("/v1/blocks/{target}", member=204),
    ("user/me/email/confirm", "POST"): Row("/v1/user/me/email/confirm", {"code": "000000"}, member=400),
    ("user/me/email/confirm/resend", "POST"): Row("/v1/user/me/email/confirm/resend", member=202),
    ("user/me/settings", "GET"): Row("/v1/user/me/settings", member=200),
    ("user/me/settings", "PATCH"): Row("/v1/user/me/settings", {"last_seen": "contacts"}, member=200),
    ("conversations", "GET"): Row("/v1/conversations", member=200),
    ("conversations", "POST"): Row(
        "/v1/conversations", {"type": "private", "target_id": "{owner}"}, member=200, stranger=201, admin=201, owner=400
    ),
    ("conversations/{conversation_id}", "GET"): Row("/v1/conversations/{conversation}", stranger=404, member=200),
    ("conversations/{conversation_id}/messages", "GET"): Row(
        "/v1/conversations/{conversation}/messages", stranger=404, member=200
    ),
    ("conversations/{conversation_id}/messages", "POST"): Row(
        "/v1/conversations/{conversation}/messages", {"content": "hi"}, stranger=404, member=201
    ),
    ("conversations/{conversation_id}/read", "POST"): Row(
        "/v1/conversations/{conversation}/read", {"message_id": "{message}"}, stranger=404, member=200
    ),
    ("conversations/{conversation_id}/settings", "PATCH"): Row(
        "/v1/conversations/{conversation}/settings", {"pinned": True}, stranger=404, member=200
    ),
    # {message} is the owner's: only its sender edits it; an admin recalls only a plain member's.
    ("conversations/{conversation_id}/messages/{message_id}", "PATCH"): Row(
        "/v1/conversations/{conversation}/messages/{message}",
        {"content": "edited"},
        stranger=404,
        member=403,
        owner=200,
    ),
    ("conversations/{conversation_id}/messages/{message_id}", "DELETE"): Row(
        "/v1/conversations/{conversation}/messages/{message}", stranger=404, member=204
    ),
    ("conversations/{conversation_id}/messages/{message_id}/recall", "POST"): Row(
        "/v1/conversations/{conversation}/messages/{message}/recall", stranger=404, member=403, owner=200
    ),
    ("conversations/{conversation_id}/clear", "POST"): Row(
        "/v1/conversations/{conversation}/clear", stranger=404, member=204
    ),
    ("conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}", "PUT"): Row(
        "/v1/conversations/{conversation}/messages/{message}/reactions/%F0%9F%91%8D", stranger=404, member=200
    ),
    ("conversations/{conversation_id}/messages/{message_id}/reactions/{emoji}", "DELETE"): Row(
        "/v1/conversations/{conversation}/messages/{message}/reactions/%F0%9F%91%8D", stranger=404, member=200
    ),
    ("messages/forward", "POST"): Row(
        "/v1/messages/forward",
        {"message_ids": ["{message}"], "conversation_ids": ["{conversation}"]},
        stranger=404,
        member=201,
    ),
    ("messages/search", "GET"): Row(
        "/v1/messages/search?q=hi&conversation_id={conversation}", stranger=404, member=200
    ),
    ("groups/{group_id}", "GET"): Row("/v1/groups/{group}", stranger=404, member=200),
    ("groups/{group_id}", "PATCH"): Row(
        "/v1/groups/{group}", {"announcement": "x"}, stranger=404, member=403, admin=200, owner=200
    ),
    ("groups/{group_id}/members", "GET"): Row("/v1/groups/{group}/members", stranger=404, member=200),
    ("groups/{group_id}/members", "POST"): Row(
        "/v1/groups/{group}/members", {"user_ids": ["{outsider}"]}, stranger=404, member=200
    ),
    ("groups/{group_id}/members/{user_id}", "PATCH"): Row(
        "/v1/groups/{group}/members/{target}", {"role": "admin"}, stranger=404, member=403, admin=403, owner=200
    ),
    ("groups/{group_id}/members/{user_id}", "DELETE"): Row(
        "/v1/groups/{group}/members/{target}", stranger=404, member=403, admin=204, owner=204
    ),
    ("sync", "GET"): Row("/v1/sync?since=0", member=200),
    ("calls", "GET"): Row("/v1/calls", member=200),
    ("calls", "POST"): Row(  # the owner and the member are busy with {call}
        "/v1/calls",
        {"target_id": "{outsider}", "type": "audio", "offer_sdp": "v=0"},
        member=409,
        owner=409,
        stranger=201,
        admin=201,
    ),
    ("calls/{call_id}/accept", "POST"): Row(
        "/v1/calls/{call}/accept", {"answer_sdp": "v=0"}, stranger=404, admin=404, member=200, owner=403
    ),
    ("calls/{call_id}/reject", "POST"): Row("/v1/calls/{call}/reject", stranger=404, admin=404, member=200, owner=403),
    ("calls/{call_id}/end", "POST"): Row("/v1/calls/{call}/end", stranger=404, admin=404, member=200, owner=200),
    ("calls/ice-servers", "GET"): Row("/v1/calls/ice-servers", member=200),
    ("user/me/unread", "GET"): Row("/v1/user/me/unread", member=200),
    ("devices", "GET"): Row("/v1/devices", member=200),
    # {device} is the owner's other session; the owner's client is a fresh session (password needed).
    ("devices/{device_id}", "DELETE"): Row("/v1/devices/{device}", {"password": PASSWORD}, member=404, owner=204),
    ("devices/logout-others", "POST"): Row("/v1/devices/logout-others", {"password": PASSWORD}, member=204),
    ("devices/current/push", "PUT"): Row("/v1/devices/current/push", {"provider": "fcm", "token": "t"}, member=200),
    ("devices/current/push", "DELETE"): Row("/v1/devices/current/push", member=204),
    ("media/upload", "POST"): Row(
        "/v1/media/upload", {"type": "file", "file": "{file}"}, member=201, format="multipart"
    ),
}


def _walk(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.callback


def _template(route):
    """A resolver route as a template: 'v1/^groups/(?P<group_id>g[0-9]+)/?$' -> 'groups/{group_id}'."""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route.removeprefix("v1/"))
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return route.replace("^", "").replace("$", "").replace("/?", "").strip("/")


def v1_routes():
    routes = set()
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.startswith("v1/"):
            continue
        actions = getattr(callback, "actions", None)
        if actions:
            methods = [m for m in actions if m != "head"]  # HEAD follows GET
        else:
            view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            methods = [m for m in ("get", "post", "patch", "put", "delete") if hasattr(view_class, m)]
        routes.update((_template(route), method.upper()) for method in methods)
    return routes


def test_every_route_has_a_row():
    missing = sorted(v1_routes() - set(MATRIX))
    assert not missing, f"Some /v1 routes are not in the authorization matrix: {missing}"
    stale = sorted(set(MATRIX) - v1_routes())
    assert not stale, f"Rows for routes that no longer exist: {stale}"


@pytest.fixture
def world(db):
    owner, admin, member, stranger = (make_user(n) for n in ("olive", "adam", "mia", "sam"))
    target, outsider = make_user("tina"), make_user("otto")
    group = group_of(owner, admin, member, target)
    Membership.objects.filter(conversation=group.conversation, user=admin).update(role="admin")
    message = send(owner, group.conversation, "hello group")
    private_chat(owner, member)
    client_for(member).post("/v1/contacts", {"user_id": str(owner.pk)}, format="json")
    call = call_start(caller=owner, target_user_id=member.pk, type="audio", offer_sdp="v=0")  # ringing
    ids = {
        "group": f"g{group.pk}",
        "conversation": f"c{group.conversation_id}",
        "message": f"m{message.pk}",
        "member": str(member.pk),
        "owner": str(owner.pk),
        "target": str(target.pk),
        "outsider": str(outsider.pk),
        "call": f"call{call.pk}",
        "device": f"d{Device.objects.create(user=owner, name='other session').pk}",
    }
    return {"owner": owner, "admin": admin, "member": member, "stranger": stranger}, ids


def _fill(value, ids):
    if value == "{file}":
        return SimpleUploadedFile("notes.txt", b"some notes", content_type="text/plain")
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


CASES = [
    (key, who)
    for key, row in sorted(MATRIX.items())
    if row.anonymous != PUBLIC
    for who in ("anonymous", "stranger", "member", "admin", "owner")
]


@pytest.mark.parametrize("key, who", CASES, ids=[f"{m} {p} as {w}" for (p, m), w in CASES])
def test_matrix(world, key, who):
    people, ids = world
    row = MATRIX[key]
    expected = {
        "anonymous": row.anonymous,
        "member": row.member,
        "stranger": row.stranger if row.stranger is not None else row.member,
        "admin": row.admin if row.admin is not None else row.member,
        "owner": row.owner if row.owner is not None else (row.admin if row.admin is not None else row.member),
    }[who]
    client = client_for(None if who == "anonymous" else people[who])
    method = key[1].lower()
    response = getattr(client, method)(_fill(row.path, ids), _fill(row.body, ids) or None, format=row.format)
    assert response.status_code == expected, (key, who, response.content[:300])
