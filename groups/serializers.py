from rest_framework import serializers

from accounts.models import Status
from accounts.serializers import user_brief_data
from chat.models import Membership
from imserver.api import StrictSerializer, format_id
from media.storage import public_url

# --- Input ----------------------------------------------------------------------------------


class GroupUpdateIn(StrictSerializer):
    name = serializers.CharField(max_length=64, required=False)
    announcement = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    avatar = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="base64:<data>, a data:image/...;base64 URI, or the media_id of an image you uploaded; "
        "an empty string removes the avatar.",
    )


class InviteIn(serializers.Serializer):
    user_ids = serializers.ListField(child=serializers.CharField(max_length=32), min_length=1, max_length=500)


class RoleIn(StrictSerializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


# --- Output ---------------------------------------------------------------------------------


def group_data(group):
    """A group with owner_id and member_count annotated (groups.selectors.group_with_stats)."""
    return {
        "group_id": format_id("g", group.pk),
        "conversation_id": format_id("c", group.conversation_id),
        "name": group.name,
        "avatar": public_url(group.avatar),
        "owner_id": str(group.owner_id),
        "member_count": group.member_count,
        "announcement": group.announcement,
        "created_at": group.created_at,
    }


def member_data(membership, presence):
    """A member; `presence`: what the caller may see of them (contacts.selectors.presence_seen_by)."""
    return {
        **user_brief_data(membership.user),
        "role": membership.role,
        "status": presence["status"],
        "joined_at": membership.joined_at,
    }


class GroupOut(serializers.Serializer):
    group_id = serializers.CharField()
    conversation_id = serializers.CharField()
    name = serializers.CharField()
    avatar = serializers.URLField(allow_null=True)
    owner_id = serializers.CharField()
    member_count = serializers.IntegerField()
    announcement = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class MemberOut(serializers.Serializer):
    user_id = serializers.CharField()
    username = serializers.CharField()
    nickname = serializers.CharField()
    avatar = serializers.URLField(allow_null=True)
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    status = serializers.ChoiceField(choices=Status.choices)
    joined_at = serializers.DateTimeField()


class MemberListOut(serializers.Serializer):
    total = serializers.IntegerField()
    members = MemberOut(many=True)


class InviteOut(serializers.Serializer):
    success = serializers.BooleanField()
    invited_users = serializers.ListField(child=serializers.CharField(), help_text="Ids actually added.")
