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


def password_reset_confirm(*, email: str, code: str, new_password: str) -> None:
    """Sets the new password with any live code of the account (each requester's is valid on its
    own); using one voids them all. A wrong code counts as a guess at every live code, each burnt
    after PASSWORD_RESET_MAX_ATTEMPTS."""
    wait = ratelimit.check_rate("password_reset_confirm", f"email:{normalize(email)}")
    if wait:
        raise Throttled(wait)
    invalid = ValidationError({"code": ["The code is invalid or has expired."]})
    with transaction.atomic():
        user = user_matching("email", email, User.objects.filter(is_active=True))
        live = list(
            PasswordResetCode.objects.select_for_update()
            .filter(user=user, used_at__isnull=True, expires_at__gt=timezone.now())
            .order_by("pk")
            if user is not None
            else ()
        )
        if not live:
            raise invalid
        guess = code_hash(str(code))
        matched = [reset for reset in live if hmac.compare_digest(reset.code_hash, guess)]
        now = timezone.now()
        if matched:
            validate_new_password(new_password, user, field="new_password")
            PasswordResetCode.objects.filter(pk__in=[reset.pk for reset in live]).update(used_at=now)
            user_password_set(user=user, password=new_password)
        else:
            # Counted in a committed write (the error is raised after), so guesses add up.
            for reset in live:
                reset.attempts += 1
                if reset.attempts >= settings.PASSWORD_RESET_MAX_ATTEMPTS:
                    reset.used_at = now  # burn the code after too many guesses
            PasswordResetCode.objects.bulk_update(live, ["attempts", "used_at"])
    if not matched:
        raise invalid
