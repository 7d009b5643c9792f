"""WebSocket client frames owned by presence (dispatched by realtime.consumers)."""

from rest_framework import serializers

from accounts.models import Status, User
from imserver.api import validated
from presence.services import user_status_set


class StatusUpdateIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices)
    custom_message = serializers.CharField(max_length=140, required=False, allow_blank=True, allow_null=True)


def status_update(user_id, data):
    values = validated(StatusUpdateIn, data)
    user_status_set(user=User.objects.get(pk=user_id), **values)
