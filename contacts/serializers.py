from rest_framework import serializers

from accounts.models import Status
from accounts.serializers import user_brief_data, user_public_data
from contacts.models import PrivacySettings
from imserver.api import StrictSerializer


class ContactAddIn(serializers.Serializer):
    user_id = serializers.CharField(max_length=32)
    remark = serializers.CharField(max_length=64, required=False, allow_blank=True)


class ContactUpdateIn(StrictSerializer):
    remark = serializers.CharField(max_length=64, allow_blank=True)


def contact_data(contact, presence):
    """A contact; `presence`: what the owner may see of it (contacts.selectors.presence_seen_by)."""
    return {**user_public_data(contact.user, presence), "remark": contact.remark}


class ContactOut(serializers.Serializer):
    user_id = serializers.CharField()
    username = serializers.CharField()
    nickname = serializers.CharField()
    remark = serializers.CharField(allow_blank=True)
    avatar = serializers.URLField(allow_null=True)
    status = serializers.ChoiceField(choices=Status.choices)
    status_message = serializers.CharField(allow_blank=True)
    last_online = serializers.DateTimeField(allow_null=True)


class ContactListOut(serializers.Serializer):
    total = serializers.IntegerField()
    contacts = ContactOut(many=True)


def contact_status_data(user, presence):
    """The contact_status event; `presence`: what its recipients may see (contacts.selectors)."""
    return {
        "user_id": str(user.pk),
        "status": presence["status"],
        "last_online": presence["last_online"],
        "custom_message": presence["status_message"],
    }


def block_data(block):
    return {**user_brief_data(block.user), "blocked_at": block.created_at}


class BlockedUserOut(serializers.Serializer):
    user_id = serializers.CharField()
    username = serializers.CharField()
    nickname = serializers.CharField()
    avatar = serializers.URLField(allow_null=True)
    blocked_at = serializers.DateTimeField()


class BlockListOut(serializers.Serializer):
    total = serializers.IntegerField()
    users = BlockedUserOut(many=True)


PRIVACY_FIELDS = (
    "last_seen",
    "who_can_message",
    "who_can_call",
    "who_can_add_to_groups",
    "send_read_receipts",
    "send_typing",
    "notification_preview",
)


class PrivacySettingsOut(serializers.ModelSerializer):
    """The REST shape of GET/PATCH /v1/user/me/settings, and its input: only known keys and values."""

    class Meta:
        model = PrivacySettings
        fields = PRIVACY_FIELDS
        extra_kwargs = {name: {"required": True} for name in PRIVACY_FIELDS}  # every response has them all


class PrivacySettingsIn(StrictSerializer, PrivacySettingsOut):
    class Meta(PrivacySettingsOut.Meta):
        extra_kwargs = {name: {"required": False} for name in PRIVACY_FIELDS}


def privacy_settings_data(privacy):
    return {name: getattr(privacy, name) for name in PRIVACY_FIELDS}
