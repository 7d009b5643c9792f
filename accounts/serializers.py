"""Account request bodies (input serializers validate only) and response shapes.

Responses are built by the `*_data` functions; the `*Out` serializers describe the same shapes
for the OpenAPI schema, and the test suite checks every response against that schema.
"""

from rest_framework import serializers

from accounts.models import Status
from imserver.api import StrictSerializer, visible_text
from media.storage import public_url

# --- Input ----------------------------------------------------------------------------------


class DeviceIn(StrictSerializer):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    platform = serializers.ChoiceField(choices=["ios", "android", "web", "desktop"], required=False)
    app_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class RegisterIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    email = serializers.EmailField(max_length=254)
    nickname = serializers.CharField(max_length=64, required=False, allow_blank=True, validators=[visible_text])
    device = DeviceIn(required=False, help_text="The device this login session runs on (contract 11).")


class LoginIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    device = DeviceIn(required=False, help_text="The device this login session runs on (contract 11).")


class RefreshTokenIn(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class OAuthIn(serializers.Serializer):
    code = serializers.CharField(max_length=4096)
    redirect_uri = serializers.CharField(max_length=2048, required=False, allow_blank=True)
    code_verifier = serializers.CharField(max_length=256, required=False, allow_blank=True)
    device = DeviceIn(required=False, help_text="The device this login session runs on (contract 11).")


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


class EmailConfirmIn(StrictSerializer):
    code = serializers.RegexField(r"^[0-9]{6}$", max_length=6, help_text="The 6-digit code mailed to you.")


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


def presence_data(user):
    """The user's presence as they see it themselves; others see it through
    contacts.selectors.presence_seen_by (blocks and last_seen, contract 16)."""
    return {"status": user.status, "status_message": user.status_message, "last_online": user.last_online}


def user_public_data(user, presence):
    """A profile; `presence`: what the caller may see of it (contacts.selectors.presence_seen_by)."""
    return {**user_brief_data(user), **presence}


def user_me_data(user):
    return {
        **user_public_data(user, presence_data(user)),
        "email": user.email,
        "email_verified": user.email_verified,
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
    device_id = serializers.CharField(help_text="The device (login session) these tokens belong to.")


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
    email_verified = serializers.BooleanField(
        help_text="You confirmed the email with the mailed code (or your OAuth provider vouches for it)."
    )
    created_at = serializers.DateTimeField()


class UserSearchOut(serializers.Serializer):
    total = serializers.IntegerField()
    users = UserBriefOut(many=True)


# --- Devices (contract 11, 12) --------------------------------------------------------------


class PasswordConfirmIn(StrictSerializer):
    password = serializers.CharField(
        max_length=128,
        trim_whitespace=False,
        required=False,
        help_text="Required while the calling session is younger than SESSION_FRESH_HOURS (default 24).",
    )


class PushRegisterIn(StrictSerializer):
    provider = serializers.ChoiceField(choices=["fcm", "apns"])
    token = serializers.CharField(max_length=4096)
    voip_token = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")
    call_push = serializers.ChoiceField(choices=["voip", "alert"], required=False, default="voip")
    sandbox = serializers.BooleanField(required=False, default=False)


def device_data(device, *, current_device_id, push_enabled):
    return {
        "device_id": f"d{device.pk}",
        "name": device.name,
        "platform": device.platform or None,
        "app_version": device.app_version,
        "created_at": device.created_at,
        "last_seen_at": device.last_seen_at,
        "current": device.pk == current_device_id,
        "push_enabled": push_enabled,
    }


class DeviceOut(serializers.Serializer):
    device_id = serializers.CharField()
    name = serializers.CharField()
    platform = serializers.ChoiceField(choices=["ios", "android", "web", "desktop"], allow_null=True)
    app_version = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(help_text="May lag by a few minutes.")
    current = serializers.BooleanField(help_text="The device of the calling session.")
    push_enabled = serializers.BooleanField()


class DevicesOut(serializers.Serializer):
    devices = DeviceOut(many=True)


class PushRegistrationOut(serializers.Serializer):
    device_id = serializers.CharField()
    push_enabled = serializers.BooleanField(
        help_text="False while the server has no credentials for the provider (the registration is kept)."
    )
