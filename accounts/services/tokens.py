"""Refresh tokens: rotation, logout, revoking all of a user's, and pruning expired records."""

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.devices import device_open, device_seen
from accounts.models import Device, PasswordResetCode, PasswordResetGuess, User
from accounts.tokens import token_device_id, token_pair_for, user_for_token
from imserver.batches import in_batches
from realtime import events


@transaction.atomic
def token_refresh(*, refresh_token: str) -> dict:
    """Rotates a refresh token: exactly one caller can use it; the old one is blacklisted.

    The user's row is locked first, as user_revoke_tokens' update locks it, and held until the new
    pair is issued: a concurrent revocation (password change or reset, ban, deletion) either
    commits first, and this refresh fails, or waits for it and revokes the new pair too.
    """
    try:
        refresh = RefreshToken(refresh_token)
    except TokenError:
        raise AuthenticationFailed("Refresh token is invalid or expired", code="token_not_valid") from None
    user = user_for_token(refresh, lock=True)
    outstanding = OutstandingToken.objects.select_for_update().filter(jti=refresh["jti"]).first()
    if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
        raise AuthenticationFailed("Refresh token is invalid or expired", code="token_not_valid")
    BlacklistedToken.objects.create(token=outstanding)
    device_id = token_device_id(refresh)
    if device_id is None:  # a pair issued before devices existed: its session becomes one
        device_id = device_open(user=user).pk
    else:
        device_seen(device_id)
    return token_pair_for(user, device_id)


def token_logout(*, refresh_token: str) -> None:
    try:
        RefreshToken(refresh_token).blacklist()
    except TokenError:
        raise AuthenticationFailed("Refresh token is invalid or expired", code="token_not_valid") from None


def user_revoke_tokens(user: User, *, close_code: int = 4401, keep_device_id: int | None = None) -> None:
    """Revokes every token of the user (access ones included), closes their sockets and revokes
    every device but `keep_device_id` (whose caller gets a new pair: a password change)."""
    User.objects.filter(pk=user.pk).update(token_version=F("token_version") + 1)
    user.refresh_from_db(fields=["token_version"])
    outstanding = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now()).exclude(
        blacklistedtoken__isnull=False
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    events.disconnect_user_on_commit(user.pk, close_code)
    # After the user-wide close, so that its code (4403 for a ban) is the one the sockets see.
    Device.objects.filter(user=user).exclude(pk=keep_device_id).delete()


def tokens_prune(*, batch: int = 10_000) -> tuple[int, int]:
    """Deletes the records of expired refresh tokens (with their blacklist entries) and expired
    password-reset codes (and wrong reset guesses past their window), which nothing else ever
    deletes; returns (tokens, codes) deleted.

    An expired token is refused for its expiry alone, so its record serves nothing. A batch per
    transaction, so it never holds long locks.
    """
    now = timezone.now()
    tokens = 0
    expired = OutstandingToken.objects.filter(expires_at__lte=now).order_by("pk").values_list("pk", flat=True)
    for ids in in_batches(expired, size=batch):
        BlacklistedToken.objects.filter(token_id__in=ids)._raw_delete(BlacklistedToken.objects.db)
        tokens += OutstandingToken.objects.filter(pk__in=ids)._raw_delete(OutstandingToken.objects.db)
    codes, _ = PasswordResetCode.objects.filter(expires_at__lte=now).delete()
    # A wrong reset code counts for one code lifetime; after it, its record serves nothing either.
    PasswordResetGuess.objects.filter(created_at__lte=now - settings.PASSWORD_RESET_CODE_TTL).delete()
    return tokens, codes
