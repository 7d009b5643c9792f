"""Login: credentials checked under the rate limit and the lockout of repeated failures."""

import secrets

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, Throttled

from accounts.models import User
from accounts.normalization import normalize, user_matching
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
    wait = ratelimit.check_rate("login", f"username:{normalize(username)}")
    if wait:
        raise Throttled(wait)
    take_back = _reserve_failure(username, address)
    user = user_matching("username", username)
    password_ok = check_password(password, user.password if user else _DUMMY_PASSWORD_HASH)
    if user is None or not password_ok or not user.is_active:
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="invalid_credentials")
    take_back()
    if user.is_banned:
        raise PermissionDenied("This account is banned")
    return user


def password_confirm(*, user: User, password: str, address: str) -> bool:
    """Whether `password` is the signed-in user's, checked under the login lockout of their
    username (password change, account deletion): no password oracle outside it (contract 23)."""
    take_back = _reserve_failure(user.username, address)
    if not user.check_password(password):
        return False
    take_back()
    return True
