"""Call shapes: `*_data` build them (REST and WebSocket events), `*Out` document the REST ones for
the OpenAPI schema, `*In` validate request bodies."""

from rest_framework import serializers

from calls.models import Call
from imserver.api import StrictCharField, format_id

# --- Input ----------------------------------------------------------------------------------


class CallStartIn(serializers.Serializer):
    target_id = StrictCharField(max_length=32, help_text="The user to call.")
    type = serializers.ChoiceField(choices=Call.Type.choices)
    # SDP lines end with CRLF: never trimmed. Size is checked by the service (over 64 KiB: 413).
    offer_sdp = StrictCharField(trim_whitespace=False)


class CallAcceptIn(serializers.Serializer):
    answer_sdp = StrictCharField(trim_whitespace=False)


# --- Output ---------------------------------------------------------------------------------


def call_data(call):
    """A call as the REST API returns it (POST /v1/calls, accept/reject/end, history)."""
    return {
        "call_id": format_id("call", call.pk),
        "caller_id": str(call.caller_id),
        "caller_name": call.caller.display_name,
        "target_id": str(call.callee_id),
        "target_name": call.callee.display_name,
        "conversation_id": format_id("c", call.conversation_id),
        "type": call.type,
        "status": call.status,
        "duration": call.duration,
        "created_at": call.created_at,
        "connected_at": call.connected_at,
        "ended_at": call.ended_at,
        "updated_at": call.updated_at,
    }


def incoming_call_data(call):
    """The `incoming_call` event the callee's devices ring with."""
    return {
        "call_id": format_id("call", call.pk),
        "caller_id": str(call.caller_id),
        "caller_name": call.caller.display_name,
        "type": call.type,
        "offer_sdp": call.offer_sdp,
        "created_at": call.created_at,
    }


def call_status_data(call):
    """The `call_status` event both parties get on every change (duration once finished)."""
    data = {"call_id": format_id("call", call.pk), "status": call.status, "updated_at": call.updated_at}
    if call.duration is not None:
        data["duration"] = call.duration
    return data


class CallOut(serializers.Serializer):
    call_id = serializers.CharField()
    caller_id = serializers.CharField()
    caller_name = serializers.CharField()
    target_id = serializers.CharField(help_text="The callee (also in the history of calls the caller received).")
    target_name = serializers.CharField()
    conversation_id = serializers.CharField(help_text="The private conversation where the call leaves its record.")
    type = serializers.ChoiceField(choices=Call.Type.choices)
    status = serializers.ChoiceField(choices=Call.Status.choices)
    duration = serializers.IntegerField(
        allow_null=True, min_value=0, help_text="Seconds from connection to end once finished (0 if never connected)."
    )
    created_at = serializers.DateTimeField()
    connected_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()


class CallListOut(serializers.Serializer):
    total = serializers.IntegerField()
    calls = CallOut(many=True)


class IceServerOut(serializers.Serializer):
    urls = serializers.ListField(child=serializers.CharField())
    username = serializers.CharField(required=False, help_text="TURN only: '<expiry unix time>:<user id>'.")
    credential = serializers.CharField(required=False, help_text="TURN only: base64(HMAC-SHA1(secret, username)).")


class IceServersOut(serializers.Serializer):
    ice_servers = IceServerOut(many=True)
    ttl = serializers.IntegerField(help_text="Seconds the TURN credentials stay valid: fetch again before then.")
