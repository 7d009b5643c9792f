from rest_framework import serializers

from accounts.models import Status
from accounts.serializers import user_public_data
from imserver.api import StrictSerializer


class ContactAddIn(serializers.Serializer):
    user_id = serializers.CharField(max_length=32)
    remark = serializers.CharField(max_length=64, required=False, allow_blank=True)


class ContactUpdateIn(StrictSerializer):
    remark = serializers.CharField(max_length=64, allow_blank=True)


def contact_data(contact):
    return {**user_public_data(contact.user), "remark": contact.remark}


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
