"""Email ownership (contract 23): a 6-digit code mailed at registration (and on request) proves
that the user reads mail at their address; until then no OAuth identity links to the account."""

import hmac
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import Throttled, ValidationError

from accounts.models import EmailConfirmation, User
from accounts.services.passwords import code_hash, mail_send_on_commit
from imserver import ratelimit


@transaction.atomic
def email_confirmation_send(user: User) -> None:
    """Mails a new code (the one before stops working); nothing for a confirmed or empty email."""
    if user.email_verified or not user.email:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    expires_at = timezone.now() + settings.EMAIL_CONFIRM_CODE_TTL
    EmailConfirmation.objects.update_or_create(
        user=user, defaults={"code_hash": code_hash(code), "expires_at": expires_at, "attempts": 0}
    )
    minutes = int(settings.EMAIL_CONFIRM_CODE_TTL.total_seconds() // 60)
    mail_send_on_commit(user, "email_confirm", {"user": user, "code": code, "minutes": minutes})


def email_confirm(*, user: User, code: str) -> None:
    """Confirms the email with the mailed code; a wrong or expired one is a 400, and after
    EMAIL_CONFIRM_MAX_ATTEMPTS wrong ones the code is burnt (repeated tries are also throttled)."""
    wait = ratelimit.check_rate("email_confirm", f"user:{user.pk}")
    if wait:
        raise Throttled(wait)
    with transaction.atomic():
        pending = (
            EmailConfirmation.objects.select_for_update()
            .filter(user=user, expires_at__gt=timezone.now(), attempts__lt=settings.EMAIL_CONFIRM_MAX_ATTEMPTS)
            .first()
        )
        matched = pending is not None and hmac.compare_digest(pending.code_hash, code_hash(code))
        if matched:
            pending.delete()
            User.objects.filter(pk=user.pk).update(email_verified=True)
        elif pending is not None:
            # Counted in a committed write (the error is raised after), so guesses add up.
            pending.attempts += 1
            pending.save(update_fields=["attempts"])
    if not matched:
        raise ValidationError({"code": ["The code is invalid or has expired."]})
