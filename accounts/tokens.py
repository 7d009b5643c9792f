"""JWT pairs (simplejwt) bound to the user's token_version, so one bump revokes them all."""

from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User

VERSION_CLAIM = "ver"


def token_pair_for(user):
    refresh = RefreshToken.for_user(user)
    refresh[VERSION_CLAIM] = user.token_version
    return {"token": str(refresh.access_token), "refresh_token": str(refresh)}


# Every authenticated request runs this; plain SQL spares building the same ORM query each time.
_USER_BY_ID = f"SELECT * FROM {User._meta.db_table} WHERE id = %s"


def user_for_token(token):
    """The live user a validated token speaks for, or AuthenticationFailed (401)."""
    try:
        user_id = int(token.get("user_id"))
    except (TypeError, ValueError):
        user_id = None
    user = next(iter(User.objects.raw(_USER_BY_ID, [user_id])), None) if user_id is not None else None
    if user is None or not user.is_active or user.is_banned or token.get(VERSION_CLAIM) != user.token_version:
        raise AuthenticationFailed("Token has been revoked", code="token_revoked")
    return user
