"""GET /v1/capabilities (contract 22): what this server implements and the limits it enforces.

FEATURES is the one list of the Part 2 sections this server implements: a branch that lands a
section adds its name here (in the contract's order), and nowhere else. The limits are read from
the very settings the code enforces, so they cannot drift apart.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

FEATURES = (
    "devices",
    "push",
    "read_sync",
    "typing",
    "edit",
    "recall",
    "hide",
    "blocks",
    "privacy",
    "conversation_settings",
    "replies",
    "mentions",
    "forward",
    "reactions",
    "delivered",
    "search",
    "idempotency_key",
)


def push_configured(provider: str) -> bool:
    """Whether the server has credentials for a push provider (a device's registration is kept either way)."""
    return bool(settings.FCM_CREDENTIALS_FILE if provider == "fcm" else settings.APNS_KEY_FILE)


def push_providers() -> dict[str, bool]:
    return {provider: push_configured(provider) for provider in ("fcm", "apns")}


def capabilities() -> dict:
    return {
        "version": settings.SPECTACULAR_SETTINGS["VERSION"],
        "features": list(FEATURES),
        "limits": {
            "message_edit_window_seconds": settings.MESSAGE_EDIT_WINDOW_SECONDS,
            "message_recall_window_seconds": settings.MESSAGE_RECALL_WINDOW_SECONDS,
            "group_max_members": settings.GROUP_MAX_MEMBERS,
            "upload_max_bytes": {kind: settings.MEDIA_MAX_BYTES[kind] for kind in ("image", "video", "audio", "file")},
            "text_max_chars": settings.MESSAGE_MAX_LENGTH,
        },
        "push": push_providers(),
    }


class UploadLimitsOut(serializers.Serializer):
    image = serializers.IntegerField()
    video = serializers.IntegerField()
    audio = serializers.IntegerField()
    file = serializers.IntegerField()


class LimitsOut(serializers.Serializer):
    message_edit_window_seconds = serializers.IntegerField()
    message_recall_window_seconds = serializers.IntegerField()
    group_max_members = serializers.IntegerField()
    upload_max_bytes = UploadLimitsOut()
    text_max_chars = serializers.IntegerField()


class PushProvidersOut(serializers.Serializer):
    fcm = serializers.BooleanField()
    apns = serializers.BooleanField()


class CapabilitiesOut(serializers.Serializer):
    version = serializers.CharField()
    features = serializers.ListField(child=serializers.CharField())
    limits = LimitsOut()
    push = PushProvidersOut()


class CapabilitiesView(APIView):
    @extend_schema(responses={200: CapabilitiesOut}, summary="What this server implements and the limits it enforces")
    def get(self, request: Request) -> Response:
        return Response(capabilities())
