"""Devices: login sessions and their push registrations (contract 11, 12).

A device is created at every login (register, login, OAuth) and named in its tokens; a refresh
keeps it. Revoking a device deletes its row: its access and refresh tokens fail their next check
(accounts.tokens.user_for_token reads the device in the user's own query), its sockets close with
4401, and its push registration is gone with it.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from accounts.models import Device, User
from accounts.tokens import token_pair_for
from imserver.api import parse_id
from imserver.capabilities import push_configured
from realtime import events

CLOSE_REVOKED = 4401
PUSH_TOKEN_MAX_CHARS = 4096


def _token_hash(token: str) -> str | None:
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def device_list(*, user: User):
    return Device.objects.filter(user=user).order_by("-last_seen_at", "-pk")


def device_for_user(*, user: User, device_id: str) -> Device:
    """One of the user's devices by its id (`d42`), or 404 for "missing or not yours"."""
    device = Device.objects.filter(pk=parse_id("d", device_id) or 0, user=user).first()
    if device is None:
        raise NotFound("Device not found")
    return device


@transaction.atomic
def device_open(*, user: User, name: str = "", platform: str = "", app_version: str = "") -> Device:
    """A new login session. Past DEVICES_MAX_PER_USER the least recently seen ones are revoked."""
    device = Device.objects.create(user=user, name=name, platform=platform, app_version=app_version)
    excess = list(device_list(user=user).exclude(pk=device.pk)[settings.DEVICES_MAX_PER_USER - 1 :])
    _revoke(user, excess)
    return device


def session_open(*, user: User, device: dict | None = None) -> dict:
    """A login's token pair, bound to a new device (register, login, OAuth): {token, refresh_token, device_id}."""
    opened = device_open(user=user, **(device or {}))
    return {**token_pair_for(user, opened.pk), "device_id": f"d{opened.pk}"}


def device_seen(device_id: int) -> None:
    """Moves a device's last_seen_at (at a refresh or a socket connect)."""
    Device.objects.filter(pk=device_id).update(last_seen_at=timezone.now())


def _revoke(user: User, devices) -> None:
    if not devices:
        return
    Device.objects.filter(pk__in=[device.pk for device in devices]).delete()
    for device in devices:
        events.disconnect_device_on_commit(user.pk, device.pk, CLOSE_REVOKED)


def device_sign_out(device: Device) -> None:
    """Revokes one device, whoever asks: a moderator (moderation.services.device_revoke)."""
    _revoke(device.user, [device])


def devices_revoke_all(*, user: User, keep_device_id: int | None = None) -> None:
    """Every device of the user but `keep_device_id` (password change, reset, ban)."""
    _revoke(user, list(Device.objects.filter(user=user).exclude(pk=keep_device_id)))


def _check_fresh_session(*, user: User, current_device_id: int | None, password: str | None) -> None:
    """A session younger than SESSION_FRESH_HOURS revokes others only with the password: a stolen
    fresh session cannot evict its owner. Accounts without a password wait out the window."""
    current = Device.objects.filter(pk=current_device_id, user=user).first()
    fresh_since = timezone.now() - timedelta(hours=settings.SESSION_FRESH_HOURS)
    if current is None or current.created_at <= fresh_since:
        return
    if not user.has_usable_password():
        raise PermissionDenied(
            f"This session is less than {settings.SESSION_FRESH_HOURS} hours old; it can sign out other "
            "devices once it is older."
        )
    if not password:
        raise PermissionDenied("A session this new must confirm the password to sign out other devices.")
    if not user.check_password(password):
        raise PermissionDenied("The password is incorrect.")


@transaction.atomic
def device_revoke(*, user: User, device_id: str, current_device_id: int | None, password: str | None = None) -> None:
    device = device_for_user(user=user, device_id=device_id)
    if device.pk != current_device_id:  # signing oneself out needs no proof
        _check_fresh_session(user=user, current_device_id=current_device_id, password=password)
    _revoke(user, [device])


@transaction.atomic
def devices_revoke_others(*, user: User, current_device_id: int | None, password: str | None = None) -> None:
    _check_fresh_session(user=user, current_device_id=current_device_id, password=password)
    devices_revoke_all(user=user, keep_device_id=current_device_id)


@transaction.atomic
def device_push_register(
    *,
    user: User,
    device_id: int | None,
    provider: str,
    token: str,
    voip_token: str = "",
    call_push: str = Device.CallPush.VOIP,
    sandbox: bool = False,
) -> Device:
    """Registers the current device for pushes. A token another device holds moves here: a phone
    that changed hands never gets the previous user's pushes."""
    device = Device.objects.select_for_update().filter(pk=device_id, user=user).first()
    if device is None:
        raise ValidationError({"device": ["This session has no device; sign in again to register for pushes."]})
    for value, field in ((token, "token"), (voip_token, "voip_token")):
        if len(value) > PUSH_TOKEN_MAX_CHARS:
            raise ValidationError({field: [f"At most {PUSH_TOKEN_MAX_CHARS} characters."]})
    push_hash, voip_hash = _token_hash(token), _token_hash(voip_token)
    Device.objects.filter(push_token_hash=push_hash).exclude(pk=device.pk).update(
        push_provider="", push_token="", push_token_hash=None
    )
    if voip_hash:
        Device.objects.filter(voip_token_hash=voip_hash).exclude(pk=device.pk).update(
            voip_token="", voip_token_hash=None
        )
    device.push_provider, device.push_token, device.push_token_hash = provider, token, push_hash
    device.voip_token, device.voip_token_hash = voip_token, voip_hash
    device.call_push, device.push_sandbox = call_push, sandbox
    device.save()
    return device


def device_push_unregister(*, user: User, device_id: int | None) -> None:
    Device.objects.filter(pk=device_id, user=user).update(
        push_provider="", push_token="", push_token_hash=None, voip_token="", voip_token_hash=None
    )


def device_push_enabled(device: Device) -> bool:
    return bool(device.push_token) and push_configured(device.push_provider)
