"""WebSocket client frames owned by chat (dispatched by realtime.consumers)."""

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from accounts.models import User
from chat.services import conversation_mark_delivered, conversation_mark_read
from chat.typing import START, STOP, typing_relay_rollback_unsafe, typing_stop_all_rollback_unsafe
from imserver.api import parse_id, validated
from presence.registry import presence


class MessagePointerIn(serializers.Serializer):
    conversation_id = serializers.CharField(max_length=32)
    message_id = serializers.CharField(max_length=32)


def _pointer(data):
    values = validated(MessagePointerIn, data)
    conversation_id, message_id = parse_id("c", values["conversation_id"]), parse_id("m", values["message_id"])
    if conversation_id is None or message_id is None:
        raise ValidationError("conversation_id and message_id must be ids like c12 and m34")
    return {"conversation_id": conversation_id, "message_id": message_id}


def message_read(user_id, data):
    conversation_mark_read(user=User(pk=user_id), **_pointer(data))


def message_delivered(user_id, data):
    conversation_mark_delivered(user=User(pk=user_id), **_pointer(data))


class TypingIn(serializers.Serializer):
    conversation_id = serializers.CharField(max_length=32)
    state = serializers.ChoiceField(choices=[START, STOP], default=START)


def typing(user_id, data):
    values = validated(TypingIn, data)
    conversation_id = parse_id("c", values["conversation_id"])
    if conversation_id is None:
        raise ValidationError("conversation_id must be an id like c12")
    typing_relay_rollback_unsafe(user_id=user_id, conversation_id=conversation_id, state=values["state"])


def socket_closed(user_id):
    """A socket of the user closed (realtime.consumers): the last one ends their typing."""
    if not presence.backend.count_blocking(user_id):
        typing_stop_all_rollback_unsafe(user_id=user_id)
