"""Account writes: registration, login, tokens, passwords, profile, bans, deletion."""

import hashlib
import hmac
import logging
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied, Throttled, ValidationError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from social_django.models import UserSocialAuth

from accounts.models import (
    DELETED_USERNAME_RE,
    DELETED_USERNAME_RESERVED,
    PasswordResetCode,
    Status,
    User,
    deleted_username,
)
from accounts.tokens import token_pair_for, user_for_token
from imserver import ratelimit
from imserver.api import Conflict
from media.services import avatar_replace
from realtime import events

logger = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
INVALID_CREDENTIALS = "Invalid username or password"
# A real hash to check against when the username is unknown, so both cases cost the same time.
_DUMMY_PASSWORD_HASH = make_password(secrets.token_urlsafe(16))


def _validate_password(password, user, field="password"):
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError({field: list(exc.messages)}) from None


@transaction.atomic
def user_register(*, username, password, email, nickname=""):
    if not USERNAME_RE.match(username):
        raise ValidationError({"username": ["Username must be 3-32 characters of letters, digits, '_', '.' or '-'."]})
    if DELETED_USERNAME_RE.match(username):
        raise ValidationError({"username": [DELETED_USERNAME_RESERVED]})
    candidate = User(username=username, email=email, nickname=nickname or username)
    _validate_password(password, candidate)
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict("Username is already taken")
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict("Email is already registered")
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:  # lost a race with an identical registration
        raise Conflict("Username or email is already registered") from None
    return candidate


def _lockout_keys(username, address):
    return (
        (f"login-fail:user:{username.lower()}", settings.LOGIN_LOCKOUT_PER_USERNAME),
        (f"login-fail:addr:{address}", settings.LOGIN_LOCKOUT_PER_ADDRESS),
    )


def user_login(*, username, password, address):
    """Checks credentials under the login rate limit and lockout (contract 1.2); returns the user."""
    wait = ratelimit.check_rate("login", f"username:{username.lower()}")
    if wait:
        raise Throttled(wait)
    window = int(settings.LOGIN_LOCKOUT_WINDOW.total_seconds())
    keys = _lockout_keys(username, address)
    wait = max(ratelimit.peek(key, limit, window) for key, limit in keys)
    if wait:
        raise Throttled(wait, "Too many failed logins; try again later")
    user = User.objects.filter(username__iexact=username).first()
    password_ok = check_password(password, user.password if user else _DUMMY_PASSWORD_HASH)
    if user is None or not password_ok or not user.is_active:
        for key, limit in keys:
            ratelimit.hit(key, limit, window)
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="invalid_credentials")
    if user.is_banned:
        raise PermissionDenied("This account is banned")
    return user


@transaction.atomic
def token_refresh(*, refresh_token):
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
    return token_pair_for(user)


def token_logout(*, refresh_token):
    try:
        RefreshToken(refresh_token).blacklist()
    except TokenError:
        raise AuthenticationFailed("Refresh token is invalid or expired", code="token_not_valid") from None


def user_revoke_tokens(user, *, close_code=4401):
    """Revokes every token of the user (access ones included) and closes their sockets."""
    User.objects.filter(pk=user.pk).update(token_version=F("token_version") + 1)
    user.refresh_from_db(fields=["token_version"])
    outstanding = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now()).exclude(
        blacklistedtoken__isnull=False
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    events.disconnect_user_on_commit(user.pk, close_code)


@transaction.atomic
def user_password_set(*, user, password):
    """Sets the password (None: no password login) and revokes every token of the user. The API's
    password change and reset and the admin's password form all come through here."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    user_revoke_tokens(user)


@transaction.atomic
def user_password_change(*, user, old_password, new_password):
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["Current password is incorrect."]})
    _validate_password(new_password, user, field="new_password")
    user_password_set(user=user, password=new_password)
    return token_pair_for(user)


def _code_hash(code):
    return hmac.new(settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).hexdigest()


# Reset mail is sent by this thread, after the request's commit: a response that waited for SMTP
# would take longer for an address with an account. One thread keeps mail in order; it is rare.
mail_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")


def _mail_send(user_id, **message):
    try:
        send_mail(**message)
    except Exception:
        logger.exception("password reset mail to user %s failed", user_id)


def password_reset_request(*, email):
    """Mails a one-time code to a known, active account; says nothing either way, nor when the
    email is over its rate limit (the request is then dropped)."""
    if ratelimit.check_rate("password_reset", f"email:{email.lower()}"):
        return
    user = User.objects.filter(email__iexact=email, is_active=True, is_banned=False).first()
    if user is None:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    now = timezone.now()
    context = {"user": user, "code": code, "minutes": int(settings.PASSWORD_RESET_CODE_TTL.total_seconds() // 60)}
    message = {
        "subject": render_to_string("accounts/email/password_reset_subject.txt", context).strip(),
        "message": render_to_string("accounts/email/password_reset.txt", context),
        "from_email": None,
        "recipient_list": [user.email],
    }
    with transaction.atomic():
        # Only the newest code is valid.
        PasswordResetCode.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
        PasswordResetCode.objects.create(
            user=user, code_hash=_code_hash(code), expires_at=now + settings.PASSWORD_RESET_CODE_TTL
        )
        transaction.on_commit(lambda: mail_sender.submit(_mail_send, user.pk, **message), robust=True)


def password_reset_confirm(*, email, code, new_password):
    wait = ratelimit.check_rate("password_reset_confirm", f"email:{email.lower()}")
    if wait:
        raise Throttled(wait)
    invalid = ValidationError({"code": ["The code is invalid or has expired."]})
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email, is_active=True).first()
        reset = (
            PasswordResetCode.objects.select_for_update()
            .filter(user=user, used_at__isnull=True, expires_at__gt=timezone.now())
            .order_by("-created_at")
            .first()
            if user is not None
            else None
        )
        if reset is None:
            raise invalid
        matched = hmac.compare_digest(reset.code_hash, _code_hash(str(code)))
        if matched:
            _validate_password(new_password, user, field="new_password")
            reset.used_at = timezone.now()
            reset.save(update_fields=["used_at"])
            user_password_set(user=user, password=new_password)
        else:
            # Counted in a committed write (the error is raised after), so guesses add up.
            reset.attempts += 1
            if reset.attempts >= settings.PASSWORD_RESET_MAX_ATTEMPTS:
                reset.used_at = timezone.now()  # burn the code after too many guesses
            reset.save(update_fields=["attempts", "used_at"])
    if not matched:
        raise invalid


@transaction.atomic
def user_update_profile(*, user, nickname=None, status_message=None, avatar=None):
    changed = []
    if nickname is not None:
        user.nickname = nickname
        changed.append("nickname")
    if status_message is not None:
        user.status_message = status_message
        changed.append("status_message")
    if avatar is not None:
        user.avatar = avatar_replace(owner=user, old=user.avatar, value=avatar)
        changed.append("avatar")
    if changed:
        user.save(update_fields=changed)
    return user


@transaction.atomic
def user_ban(*, user, reason):
    user.is_banned = True
    user.banned_at = timezone.now()
    user.ban_reason = reason
    user.save(update_fields=["is_banned", "banned_at", "ban_reason"])
    user_revoke_tokens(user, close_code=4403)
    return user


@transaction.atomic
def user_unban(*, user):
    user.is_banned = False
    user.banned_at = None
    user.save(update_fields=["is_banned", "banned_at"])
    return user


DELETED_USER_NAME = "Deleted user"


def erase_user(user: User) -> User:
    """The account's part of an erasure (privacy.services.user_delete), in the caller's transaction:
    profile, password, social-auth links and reset codes go, tokens are revoked and sockets closed."""
    user = User.objects.select_for_update().get(pk=user.pk)
    user_update_profile(user=user, avatar="")  # the file goes once this commits
    user.username = deleted_username(user.pk)
    user.nickname = DELETED_USER_NAME
    user.email = user.first_name = user.last_name = user.status_message = ""
    user.set_unusable_password()
    user.is_active = user.is_staff = user.is_superuser = user.is_online = False
    user.chosen_status = Status.ONLINE
    user.last_login = user.last_online = None
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
    UserSocialAuth.objects.filter(user=user).delete()
    PasswordResetCode.objects.filter(user=user).delete()
    user_revoke_tokens(user)
    return user


def tokens_prune(*, batch=10_000):
    """Deletes the records of expired refresh tokens (with their blacklist entries) and expired
    password-reset codes, which nothing else ever deletes; returns (tokens, codes) deleted.

    An expired token is refused for its expiry alone, so its record serves nothing. A batch per
    transaction, so it never holds long locks.
    """
    now = timezone.now()
    tokens = 0
    while True:
        with transaction.atomic():
            ids = list(
                OutstandingToken.objects.filter(expires_at__lte=now).order_by("pk").values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            BlacklistedToken.objects.filter(token_id__in=ids)._raw_delete(BlacklistedToken.objects.db)
            tokens += OutstandingToken.objects.filter(pk__in=ids)._raw_delete(OutstandingToken.objects.db)
    codes, _ = PasswordResetCode.objects.filter(expires_at__lte=now).delete()
    return tokens, codes
