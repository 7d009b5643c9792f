"""Passwords: setting and changing one, and resetting a forgotten one with a mailed code."""

import hashlib
import hmac
import logging
import math
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework.exceptions import Throttled, ValidationError

from accounts.models import PasswordResetCode, PasswordResetGuess, User
from accounts.normalization import normalize, user_matching
from accounts.services.login import password_confirm
from accounts.services.tokens import user_revoke_tokens
from accounts.tokens import token_pair_for
from imserver import ratelimit

logger = logging.getLogger(__name__)


def validate_new_password(password: str, user: User, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError({field: list(exc.messages)}) from None


@transaction.atomic
def user_password_set(*, user: User, password: str | None, keep_device_id: int | None = None) -> None:
    """Sets the password (None: no password login) and revokes every token of the user. The API's
    password change and reset and the admin's password form all come through here."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    user_revoke_tokens(user, keep_device_id=keep_device_id)


@transaction.atomic
def user_password_change(
    *, user: User, old_password: str, new_password: str, address: str, device_id: int | None = None
) -> dict:
    """Changes the password; every other device is signed out, the caller's continues with a new pair.
    Wrong old passwords count toward the login lockout (429 past it)."""
    if not password_confirm(user=user, password=old_password, address=address):
        raise ValidationError({"old_password": ["Current password is incorrect."]})
    validate_new_password(new_password, user, field="new_password")
    user_password_set(user=user, password=new_password, keep_device_id=device_id)
    return token_pair_for(user, device_id)


def code_hash(code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).hexdigest()


# Reset mail is sent by this thread, after the request's commit: a response that waited for SMTP
# would take longer for an address with an account. One thread keeps mail in order; it is rare.
mail_sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")


def mail_send_on_commit(user: User, template: str, context: dict) -> None:
    """Mails templates/accounts/email/<template>{_subject,}.txt to the user after the commit, from
    mail_sender (a failure is logged: the user asks again)."""
    message = {
        "subject": render_to_string(f"accounts/email/{template}_subject.txt", context).strip(),
        "message": render_to_string(f"accounts/email/{template}.txt", context),
        "from_email": None,
        "recipient_list": [user.email],
    }
    transaction.on_commit(lambda: mail_sender.submit(_mail_send, user.pk, template, message), robust=True)


def _mail_send(user_id, template, message):
    try:
        send_mail(**message)
    except Exception:
        logger.exception("%s mail to user %s failed", template, user_id)


def password_reset_request(*, email: str, address: str, requester: User | None = None) -> None:
    """Mails a one-time code to a known, active account; says nothing either way, nor when the
    email is over its rate limit (the request is then dropped). The limit is counted per email
    and address: requests from elsewhere never use up the owner's (contract 23). A new code
    replaces only the live one asked for from the same address: another party's requests never
    void the owner's code. At most PASSWORD_RESET_MAX_LIVE_CODES live codes from other addresses
    (the account's own signed-in requests aside): past it a request from a new address is dropped,
    so a stranger cannot multiply the codes a guess may hit."""
    if ratelimit.check_rate("password_reset", f"email:{normalize(email)}:addr:{address}"):
        return
    user = user_matching("email", email, User.objects.filter(is_active=True, is_banned=False))
    if user is None:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    now = timezone.now()
    context = {"user": user, "code": code, "minutes": int(settings.PASSWORD_RESET_CODE_TTL.total_seconds() // 60)}
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # one request of the user at a time
        live = PasswordResetCode.objects.filter(user=user, used_at__isnull=True, expires_at__gt=now)
        live.filter(requested_from=address).update(used_at=now)
        others = live.exclude(requested_from=address).count()
        if others >= settings.PASSWORD_RESET_MAX_LIVE_CODES and requester != user:
            return
        PasswordResetCode.objects.create(
            user=user,
            code_hash=code_hash(code),
            expires_at=now + settings.PASSWORD_RESET_CODE_TTL,
            requested_from=address,
            requested_by=requester,
        )
        mail_send_on_commit(user, "password_reset", context)


def password_reset_confirm(*, email: str, code: str, new_password: str, address: str) -> None:
    """Sets the new password with a live code of the account (each requester's is valid on its
    own); using one voids them all. A wrong code voids nothing: it is recorded with its address,
    and the guess budget (reset_codes_guessable) answers further guesses with 429, so another
    party's guesses neither burn nor block the owner's code while brute force stays bounded."""
    invalid = ValidationError({"code": ["The code is invalid or has expired."]})
    with transaction.atomic():
        user = user_matching("email", email, User.objects.filter(is_active=True))
        if user is None:
            raise invalid
        # One confirmation of the user at a time, so every guess is counted before the next is judged.
        User.objects.select_for_update().filter(pk=user.pk).first()
        now = timezone.now()
        live = list(PasswordResetCode.objects.filter(user=user, used_at__isnull=True, expires_at__gt=now))
        if not live:
            raise invalid
        guess = code_hash(str(code))
        guessable = reset_codes_guessable(user=user, address=address, live=live, now=now)
        matched = any(hmac.compare_digest(reset.code_hash, guess) for reset in guessable)
        if matched:
            validate_new_password(new_password, user, field="new_password")
            PasswordResetCode.objects.filter(pk__in=[reset.pk for reset in live]).update(used_at=now)
            PasswordResetGuess.objects.filter(user=user).delete()
            user_password_set(user=user, password=new_password)
        else:
            # Recorded in a committed write (the error is raised after), so guesses add up.
            PasswordResetGuess.objects.create(user=user, address=address, created_at=now)
    if not matched:
        raise invalid


def reset_codes_guessable(
    *, user: User, address: str, live: list[PasswordResetCode], now: datetime
) -> list[PasswordResetCode]:
    """The live codes of user that address may try now; Throttled (429) when none. Wrong guesses
    count over a code's lifetime: past PASSWORD_RESET_GUESSES_PER_ADDRESS from this address it may
    try none; past PASSWORD_RESET_GUESSES_PER_EMAIL from all addresses together, only the code it
    asked for itself, and only while it has guessed no wrong one (the owner confirming where they
    asked). So many addresses add at most one guess each at one code (docs/security.md)."""
    window = settings.PASSWORD_RESET_CODE_TTL
    PasswordResetGuess.objects.filter(user=user, created_at__lte=now - window).delete()
    guesses = list(
        PasswordResetGuess.objects.filter(user=user).order_by("created_at").values_list("address", "created_at")
    )
    mine = [at for guessed_from, at in guesses if guessed_from == address]
    own = [reset for reset in live if reset.requested_from == address]
    # A count falls back under its limit when the guess `limit` places from the newest leaves the window.
    if len(mine) >= settings.PASSWORD_RESET_GUESSES_PER_ADDRESS:
        until = mine[len(mine) - settings.PASSWORD_RESET_GUESSES_PER_ADDRESS] + window
    elif len(guesses) < settings.PASSWORD_RESET_GUESSES_PER_EMAIL:
        return live
    elif own and not mine:
        return own
    else:
        until = guesses[len(guesses) - settings.PASSWORD_RESET_GUESSES_PER_EMAIL][1] + window
    raise Throttled(max(1, math.ceil((until - now).total_seconds())), "Too many wrong codes; try again later")
