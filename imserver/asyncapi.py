"""The WebSocket protocol's registry (contract 7, 13-19): every server event and client frame
with its serializer, and the AsyncAPI 3 document built from them (docs/asyncapi.yaml, written by
`manage.py asyncapi`).

REST shapes are reused as they are (new_message's data is the message the REST API returns); the
shapes that exist only on the socket are declared here, matching what their builders send. The
JSON Schema of each comes from drf-spectacular itself, as the OpenAPI document's does, so both
documents describe a field the same way. The tests validate every recorded event against it.
"""

from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Status
from calls.frames import IceCandidateIn
from calls.models import Call
from chat.frames import MessagePointerIn, TypingIn
from chat.models import Membership, Message
from chat.serializers import ConversationReadOut, ConversationSettingsOut, MessageOut, SentMessageOut
from presence.frames import StatusUpdateIn

# --- Event-only shapes ----------------------------------------------------------------------


class MessageStatusOut(serializers.Serializer):
    """A message became delivered (contract 19) or read, or was removed (15)."""

    message_id = serializers.CharField()
    conversation_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["read", "removed", "delivered"])
    updated_at = serializers.DateTimeField()
    removed_by = serializers.ChoiceField(
        choices=Message.RemovedBy.choices, allow_null=True, required=False, help_text="Only when removed."
    )


class ContactStatusOut(serializers.Serializer):
    user_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    last_online = serializers.DateTimeField(allow_null=True)
    custom_message = serializers.CharField(allow_blank=True)


class GroupUpdateOut(serializers.Serializer):
    group_id = serializers.CharField()
    update_type = serializers.ChoiceField(
        choices=["new_member", "member_left", "member_removed", "role_changed", "info_updated"]
    )
    user_id = serializers.CharField(help_text="The member the update is about (info_updated: who changed it).")
    user_name = serializers.CharField()
    updated_at = serializers.DateTimeField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, required=False, help_text="role_changed only.")


class MessageUpdatedOut(serializers.Serializer):
    message = MessageOut()


class MessagesHiddenOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    message_ids = serializers.ListField(child=serializers.CharField())


class ConversationClearedOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    cleared_before_message_id = serializers.CharField(help_text="The newest message it hid.")


class ConversationSettingsEventOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    settings = ConversationSettingsOut()


class BlockUpdateOut(serializers.Serializer):
    user_id = serializers.CharField()
    blocked = serializers.BooleanField()


class ReactionUpdateOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    message_id = serializers.CharField()
    emoji = serializers.CharField()
    user_id = serializers.CharField()
    action = serializers.ChoiceField(choices=["add", "remove"])
    count = serializers.IntegerField(min_value=0, help_text="How many reacted with this emoji now.")


class IncomingCallOut(serializers.Serializer):
    call_id = serializers.CharField()
    caller_id = serializers.CharField()
    caller_name = serializers.CharField()
    type = serializers.ChoiceField(choices=Call.Type.choices)
    offer_sdp = serializers.CharField()
    created_at = serializers.DateTimeField()


class CallStatusOut(serializers.Serializer):
    call_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Call.Status.choices)
    updated_at = serializers.DateTimeField()
    duration = serializers.IntegerField(min_value=0, required=False, help_text="Seconds, once finished.")
    answer_sdp = serializers.CharField(required=False, help_text="On connected, to the caller's devices only.")


class IceCandidateOut(serializers.Serializer):
    call_id = serializers.CharField()
    candidate = serializers.CharField(allow_blank=True, help_text='"" is the end of candidates.')
    sdp_mid = serializers.CharField(allow_null=True, required=False)
    sdp_mline_index = serializers.IntegerField(allow_null=True, required=False)
    from_user_id = serializers.CharField()


class TypingOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    user_id = serializers.CharField()
    user_name = serializers.CharField()
    state = serializers.ChoiceField(choices=["start", "stop"])
    expires_in = serializers.IntegerField(help_text="Seconds after which the app drops the typist.")


class PongOut(serializers.Serializer):
    timestamp = serializers.FloatField(help_text="The ping's timestamp, echoed.")


class ErrorFrameOut(serializers.Serializer):
    code = serializers.IntegerField(help_text="An HTTP status code: 400, 403, 404, 409, 413, 429, 500, 503.")
    message = serializers.CharField()
    ref_type = serializers.CharField(allow_null=True, help_text="The type of the frame it answers.")


# --- Client-only shapes ---------------------------------------------------------------------


class PingIn(serializers.Serializer):
    timestamp = serializers.FloatField()


# --- The registry ---------------------------------------------------------------------------

# type: (serializer of data, description, durable: stored with an "id", replayed by since and sync)
SERVER_EVENTS = {
    "new_message": (
        SentMessageOut,
        "A message, as the REST API returns it, to every connection of every member; on the "
        "sender's own connections with the temp_id it was sent with.",
        True,
    ),
    "message_status": (MessageStatusOut, "A message became delivered or read (to its sender), or removed.", True),
    "message_updated": (MessageUpdatedOut, "A message was edited (to the members).", True),
    "messages_hidden": (MessagesHiddenOut, "Messages deleted for the user only (their own connections).", True),
    "conversation_cleared": (ConversationClearedOut, "The user cleared a conversation (own connections).", True),
    "conversation_read": (ConversationReadOut, "The user's read pointer moved (own connections).", True),
    "conversation_settings": (ConversationSettingsEventOut, "The user's settings of a conversation changed.", True),
    "reaction_update": (ReactionUpdateOut, "A member added or removed a reaction (never pushed).", True),
    "contact_status": (ContactStatusOut, "A contact's presence or chosen status changed.", True),
    "block_update": (BlockUpdateOut, "The user blocked or unblocked someone (own connections).", True),
    "group_update": (GroupUpdateOut, "A group's members, roles or info changed (to its members).", True),
    "incoming_call": (IncomingCallOut, "A call rings every device of the callee.", True),
    "call_status": (CallStatusOut, "A call changed status (to both parties).", True),
    "ice_candidate": (IceCandidateOut, "The other party's ICE candidate, relayed as is.", False),
    "typing": (TypingOut, "A member is typing, or stopped (never to the typist).", False),
    "pong": (PongOut, "The answer to a ping.", False),
    "error": (ErrorFrameOut, "A client frame failed; the connection stays open.", False),
}

# type: (serializer of data, description)
CLIENT_FRAMES = {
    "ping": (PingIn, "Keepalive: answered by pong."),
    "message_read": (MessagePointerIn, "Moves the read pointer forward to message_id (never back)."),
    "message_delivered": (MessagePointerIn, "Every message up to message_id is stored on some device."),
    "status_update": (StatusUpdateIn, "Sets the chosen status and custom message."),
    "typing": (TypingIn, "The user is typing (start, resent every 4 s) or stopped."),
    "ice_candidate": (IceCandidateIn, "An ICE candidate for the other party of a live call."),
}


# --- JSON Schema and AsyncAPI ---------------------------------------------------------------


def _schema_view(name, serializer, direction):
    """A hidden endpoint whose request body (send) or response (receive) is the serializer, for
    drf-spectacular to map: a POST answering 204, or a GET answering it."""

    class View(APIView):
        if direction == "send":

            @extend_schema(request=serializer, responses={204: None}, operation_id=f"send_{name}")
            def post(self, request):  # pragma: no cover: never routed
                return Response(status=204)

        else:

            @extend_schema(responses=serializer, operation_id=f"receive_{name}")
            def get(self, request):  # pragma: no cover: never routed
                return Response()

    return path(f"v1/{direction}/{name}", View.as_view())


def _component_name(ref):
    return ref["$ref"].rsplit("/", 1)[1]


def json_schemas():
    """(components, server event type -> component name, client frame type -> component name),
    generated by drf-spectacular from the registry's serializers."""
    patterns = [_schema_view(t, s, "receive") for t, (s, _, _) in SERVER_EVENTS.items()]
    patterns += [_schema_view(t, s, "send") for t, (s, _) in CLIENT_FRAMES.items()]
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    paths = schema["paths"]

    def component(direction, type):
        if direction == "send":
            body = paths[f"/v1/send/{type}"]["post"]["requestBody"]
        else:
            body = paths[f"/v1/receive/{type}"]["get"]["responses"]["200"]
        return _component_name(body["content"]["application/json"]["schema"])

    return (
        schema["components"]["schemas"],
        {type: component("receive", type) for type in SERVER_EVENTS},
        {type: component("send", type) for type in CLIENT_FRAMES},
    )


def _message(type, component, description, durable):
    properties = {"type": {"type": "string", "const": type}}
    required = ["type", "data"]
    if durable:
        properties["id"] = {"type": "string", "description": "Orders the user's events; resume with ?since=<id>."}
        required.insert(1, "id")
    properties["data"] = {"$ref": f"#/components/schemas/{component}"}
    return {
        "name": type,
        "title": type,
        "summary": description,
        "payload": {"type": "object", "required": required, "properties": properties},
    }


def asyncapi_document():
    schemas, events, frames = json_schemas()
    messages = {}
    for type, (_, description, durable) in SERVER_EVENTS.items():
        messages[f"server_{type}"] = _message(type, events[type], description, durable)
    for type, (_, description) in CLIENT_FRAMES.items():
        messages[f"client_{type}"] = _message(type, frames[type], description, False)

    def refs(prefix, types):
        return [{"$ref": f"#/channels/ws/messages/{prefix}_{type}"} for type in types]

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "imserver WebSocket protocol",
            "version": "1.0.0",
            "description": "Frames are JSON text {type, data} (contract 7); change events also carry an id. "
            "Generated by `python manage.py asyncapi` from imserver/asyncapi.py: do not edit.",
        },
        "channels": {
            "ws": {
                "address": "/ws",
                "description": "One socket per device; the server closes it with 4401 on a bad token.",
                "bindings": {
                    "ws": {
                        "query": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": {"type": "string", "description": "An access token."},
                                "since": {
                                    "type": "string",
                                    "description": "An event id: the events after it are replayed first.",
                                },
                            },
                        }
                    }
                },
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "receiveServerEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "summary": "What the server sends.",
                "messages": refs("server", SERVER_EVENTS),
            },
            "sendClientFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/ws"},
                "summary": "What the app sends.",
                "messages": refs("client", CLIENT_FRAMES),
            },
        },
        "components": {"messages": messages, "schemas": schemas},
    }
