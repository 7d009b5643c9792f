"""WebSocket client frames owned by chat (dispatched by realtime.consumers)."""

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from accounts.models import User
from chat.services import conversation_mark_read
from imserver.api import parse_id, validated


class MessageReadIn(serializers.Serializer):
    conversation_id = serializers.CharField(max_length=32)
    message_id = serializers.CharField(max_length=32)


def message_read(user_id, data):
    values = validated(MessageReadIn, data)
    conversation_id, message_id = parse_id("c", values["conversation_id"]), parse_id("m", values["message_id"])
    if conversation_id is None or message_id is None:
        raise ValidationError("conversation_id and message_id must be ids like c12 and m34")
    conversation_mark_read(user=User(pk=user_id), conversation_id=conversation_id, message_id=message_id)
