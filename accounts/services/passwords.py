"""Passwords: setting and changing one, and resetting a forgotten one with a mailed code."""

import hashlib
import hmac
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework.exceptions import Throttled, ValidationError

from accounts.models import PasswordResetCode, User
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


def password_reset_request(*, email: str, address: str) -> None:
    """Mails a one-time code to a known, active account; says nothing either way, nor when the
    email is over its rate limit (the request is then dropped). The limit is counted per email
    and address: requests from elsewhere never use up the owner's (contract 23)."""
    if ratelimit.check_rate("password_reset", f"email:{normalize(email)}:addr:{address}"):
        return
    user = user_matching("email", email, User.objects.filter(is_active=True, is_banned=False))
    if user is None:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    now = timezone.now()
    context = {"user": user, "code": code, "minutes": int(settings.PASSWORD_RESET_CODE_TTL.total_seconds() // 60)}
    with transaction.atomic():
        # Only the newest code is valid.
        PasswordResetCode.objects.filter(user=user, used_at__isnull=True).update(used_at=now)
        PasswordResetCode.objects.create(
            user=user, code_hash=code_hash(code), expires_at=now + settings.PASSWORD_RESET_CODE_TTL
        )
        mail_send_on_commit(user, "password_reset", context)


def password_reset_confirm(*, email: str, code: str, new_password: str) -> None:
    wait = ratelimit.check_rate("password_reset_confirm", f"email:{normalize(email)}")
    if wait:
        raise Throttled(wait)
    invalid = ValidationError({"code": ["The code is invalid or has expired."]})
    with transaction.atomic():
        user = user_matching("email", email, User.objects.filter(is_active=True))
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
        matched = hmac.compare_digest(reset.code_hash, code_hash(str(code)))
        if matched:
            validate_new_password(new_password, user, field="new_password")
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
