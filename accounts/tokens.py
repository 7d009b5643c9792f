"""JWT pairs (simplejwt) bound to the user's token_version, so one bump revokes them all."""

import functools

from django.db import connection
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.models import Device, User
from imserver import rows

VERSION_CLAIM = "ver"
DEVICE_CLAIM = "dev"  # the device (login session) a token pair belongs to; access tokens copy it


def token_pair_for(user, device_id=None):
    refresh = RefreshToken.for_user(user)
    refresh[VERSION_CLAIM] = user.token_version
    if device_id is not None:
        refresh[DEVICE_CLAIM] = device_id
    return {"token": str(refresh.access_token), "refresh_token": str(refresh)}


def token_device_id(token):
    """The id of the device a validated token belongs to (None for tokens issued before devices)."""
    value = token.get(DEVICE_CLAIM)
    return value if isinstance(value, int) else None


@functools.lru_cache(maxsize=8192)
def _verified_access_token(raw_token):
    return AccessToken(raw_token)


def verified_access_token(raw_token):
    """The access token with its signature and type checked, or TokenError. Apps send the same
    token with every request: the signature is checked once per process and token (a tenth of
    a request's CPU), the expiry every time."""
    token = _verified_access_token(raw_token)
    token.check_exp(current_time=aware_utcnow())
    return token


@functools.cache
def _user_by_id(vendor):
    """The statement every authenticated request runs, made once per process (imserver.rows):
    the device's row comes in it too, so a revoked (deleted) device's tokens stop at once."""
    return (
        f"SELECT {rows.columns(User, 'u')}, d.id FROM {User._meta.db_table} u "
        f"LEFT JOIN {Device._meta.db_table} d ON d.id = %s AND d.user_id = u.id WHERE u.id = %s"
    )


def _user_row(user_id, device_id):
    with connection.cursor() as cursor:
        cursor.execute(_user_by_id(connection.vendor), [device_id, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    user = rows.instance(User, "u", row)
    user.live_device_id = row[-1]
    return user


def user_for_token(token, *, lock=False):
    """The live user a validated token speaks for, or AuthenticationFailed (401); `lock` reads the
    row with SELECT ... FOR UPDATE (in a transaction)."""
    try:
        user_id = int(token.get("user_id"))
    except (TypeError, ValueError):
        user_id = None
    device_id = token_device_id(token)
    if user_id is None:
        user = None
    elif lock:
        user = User.objects.select_for_update().filter(pk=user_id).first()
        if user is not None:
            user.live_device_id = Device.objects.filter(pk=device_id, user=user).values_list("pk", flat=True).first()
    else:
        user = _user_row(user_id, device_id)
    if (
        user is None
        or not user.is_active
        or user.is_banned
        or token.get(VERSION_CLAIM) != user.token_version
        or (device_id is not None and user.live_device_id is None)
    ):
        raise AuthenticationFailed("Token has been revoked", code="token_revoked")
    return user
