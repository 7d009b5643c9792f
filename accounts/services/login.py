"""Login: credentials (and the admin's second factor) checked under the rate limit and the lockout
of repeated failures."""

import secrets

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, Throttled

from accounts.models import User
from accounts.normalization import normalize, user_matching
from accounts.selectors import totp_device_confirmed
from imserver import ratelimit

INVALID_CREDENTIALS = "Invalid username or password"
# A real hash to check against when the username is unknown, so both cases cost the same time.
_DUMMY_PASSWORD_HASH = make_password(secrets.token_urlsafe(16))


def _lockout_keys(username, address):
    """Failures are counted per username and address (the owner's own address has a bucket of its
    own, contract 23), per username from all addresses (a higher bound) and per address."""
    name = normalize(username)
    return (
        (f"login-fail:user:{name}:addr:{address}", settings.LOGIN_LOCKOUT_PER_USERNAME),
        (f"login-fail:user:{name}", settings.LOGIN_LOCKOUT_PER_USERNAME_ALL_ADDRESSES),
        (f"login-fail:addr:{address}", settings.LOGIN_LOCKOUT_PER_ADDRESS),
    )


def _reserve_failure(username, address):
    """Counts an attempt as a failure before its password is checked; 429 past the lockout."""
    window = int(settings.LOGIN_LOCKOUT_WINDOW.total_seconds())
    keys = _lockout_keys(username, address)
    wait = max(ratelimit.hit(key, limit, window) for key, limit in keys)
    if wait:
        raise Throttled(wait, "Too many failed logins; try again later")
    return lambda: [ratelimit.release(key, window) for key, _ in keys]


def user_login(*, username: str, password: str, address: str) -> User:
    """Checks credentials under the login rate limit and lockout (contract 1.2, 23); returns the
    user. The API and the admin login both come here, so they share counters and lockout.

    Every attempt counts as a failure before the password is checked and is taken back when it
    succeeds: concurrent guesses cannot all pass a check made before any of them failed."""
    return _login(username=username, password=password, address=address)[0]


def admin_login(*, username: str, password: str, otp_token: str, address: str) -> tuple[User, TOTPDevice | None]:
    """The admin's login: user_login's, and for an account with a confirmed TOTP device its
    current code too, under the same reservation: a wrong code is a failed login of the lockout,
    and a code is accepted once. Returns the user and the device that verified them."""
    return _login(username=username, password=password, address=address, otp_token=otp_token, second_factor=True)


def _login(*, username, password, address, otp_token="", second_factor=False):
    wait = ratelimit.check_rate("login", f"username:{normalize(username)}")
    if wait:
        raise Throttled(wait)
    take_back = _reserve_failure(username, address)
    user = user_matching("username", username)
    password_ok = check_password(password, user.password if user else _DUMMY_PASSWORD_HASH)
    if user is None or not password_ok or not user.is_active:
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="invalid_credentials")
    device = totp_device_confirmed(user=user) if second_factor else None
    if device is not None and not totp_verify(device=device, token=otp_token):
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="invalid_otp")
    take_back()
    if user.is_banned:
        raise PermissionDenied("This account is banned")
    return user, device


@transaction.atomic
def totp_verify(*, device: TOTPDevice, token: str) -> bool:
    """Whether token is the device's current code and newer than the last one it accepted (the
    row locked: two logins racing with one code cannot both pass)."""
    locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
    return bool(token) and locked.verify_token(token.strip())


def totp_device_start(*, user: User) -> TOTPDevice:
    """The user's TOTP device waiting for its first code (a new secret the first time; the same
    one while it waits, so the QR code shown stays valid)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="admin", confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: User, token: str, address: str) -> TOTPDevice | None:
    """Confirms the user's waiting device with its current code, under the login lockout (a wrong
    code counts as a failed login; 429 past it); returns the device, or None for a wrong code.
    The user's other devices go: one second factor a user."""
    take_back = _reserve_failure(user.username, address)
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
    if device is None or not token or not device.verify_token(token.strip()):
        return None
    take_back()
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device


def password_confirm(*, user: User, password: str, address: str) -> bool:
    """Whether `password` is the signed-in user's, checked under the login lockout of their
    username (password change, account deletion): no password oracle outside it (contract 23)."""
    take_back = _reserve_failure(user.username, address)
    if not user.check_password(password):
        return False
    take_back()
    return True
