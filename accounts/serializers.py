"""Account request bodies (input serializers validate only) and response shapes.

Responses are built by the `*_data` functions; the `*Out` serializers describe the same shapes
for the OpenAPI schema, and the test suite checks every response against that schema.
"""

from rest_framework import serializers

from accounts.models import Status
from imserver.api import StrictSerializer, visible_text
from media.storage import public_url

# --- Input ----------------------------------------------------------------------------------


class RegisterIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    email = serializers.EmailField(max_length=254)
    nickname = serializers.CharField(max_length=64, required=False, allow_blank=True, validators=[visible_text])


class LoginIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshTokenIn(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class OAuthIn(serializers.Serializer):
    code = serializers.CharField(max_length=4096)
    redirect_uri = serializers.CharField(max_length=2048, required=False, allow_blank=True)
    code_verifier = serializers.CharField(max_length=256, required=False, allow_blank=True)


class PasswordChangeIn(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class PasswordResetIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    code = serializers.RegexField(r"^[0-9]{6}$", max_length=6)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class ProfilePatchIn(StrictSerializer):
    nickname = serializers.CharField(max_length=64, required=False, validators=[visible_text])
    status_message = serializers.CharField(max_length=140, required=False, allow_blank=True, validators=[visible_text])
    avatar = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="base64:<data>, a data:image/...;base64 URI, or the media_id of an image you uploaded; "
        "an empty string removes the avatar.",
    )


class AccountDeleteIn(StrictSerializer):
    password = serializers.CharField(max_length=128, trim_whitespace=False, required=False)


class UserSearchParams(serializers.Serializer):
    query = serializers.CharField(max_length=64)


# --- Output ---------------------------------------------------------------------------------


def user_brief_data(user):
    return {
        "user_id": str(user.pk),
        "username": user.username,
        "nickname": user.display_name,
        "avatar": public_url(user.avatar),
    }


def user_public_data(user):
    return {
        **user_brief_data(user),
        "status": user.status,
        "status_message": user.status_message,
        "last_online": user.last_online,
    }


def user_me_data(user):
    return {
        **user_public_data(user),
        "email": user.email,
        "created_at": user.date_joined,
    }


def auth_data(user, tokens):
    return {"user_id": str(user.pk), "username": user.username, **tokens}


class TokenPairOut(serializers.Serializer):
    token = serializers.CharField(help_text="Access token (JWT), sent as `Authorization: Bearer <token>`.")
    refresh_token = serializers.CharField()


class AuthOut(TokenPairOut):
    user_id = serializers.CharField()
    username = serializers.CharField()


class UserBriefOut(serializers.Serializer):
    user_id = serializers.CharField()
    username = serializers.CharField()
    nickname = serializers.CharField()
    avatar = serializers.URLField(allow_null=True)


class UserPublicOut(UserBriefOut):
    status = serializers.ChoiceField(choices=Status.choices)
    status_message = serializers.CharField(allow_blank=True)
    last_online = serializers.DateTimeField(allow_null=True)


class UserMeOut(UserPublicOut):
    email = serializers.EmailField(allow_blank=True)
    created_at = serializers.DateTimeField()


class UserSearchOut(serializers.Serializer):
    total = serializers.IntegerField()
    users = UserBriefOut(many=True)
