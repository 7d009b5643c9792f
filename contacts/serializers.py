from rest_framework import serializers

from accounts.models import Status
from imserver.api import StrictSerializer
from media.storage import public_url


class ContactAddIn(serializers.Serializer):
    user_id = serializers.CharField(max_length=32)
    remark = serializers.CharField(max_length=64, required=False, allow_blank=True)


class ContactUpdateIn(StrictSerializer):
    remark = serializers.CharField(max_length=64, allow_blank=True)


def contact_data(contact):
    user = contact.user
    return {
        "user_id": str(user.pk),
        "username": user.username,
        "nickname": user.display_name,
        "remark": contact.remark,
        "avatar": public_url(user.avatar),
        "status": user.status,
        "status_message": user.status_message,
        "last_online": user.last_online,
    }


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
