import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import PasswordResetCode, PasswordResetGuess
from accounts.services import tokens_prune
from accounts.tokens import token_pair_for

pytestmark = pytest.mark.django_db


def refresh_record(user, *, expired, blacklisted):
    jti = RefreshToken(token_pair_for(user)["refresh_token"])["jti"]
    record = OutstandingToken.objects.get(jti=jti)
    if expired:
        OutstandingToken.objects.filter(pk=record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    if blacklisted:
        BlacklistedToken.objects.create(token=record)
    return record.pk


def reset_code(user, *, expired):
    expires_at = timezone.now() + timedelta(minutes=-1 if expired else 30)
    return PasswordResetCode.objects.create(user=user, code_hash="x", expires_at=expires_at).pk


def test_deletes_only_what_has_expired(user):
    live = {refresh_record(user, expired=False, blacklisted=flag) for flag in (False, True)}
    for expired in ({"blacklisted": False}, {"blacklisted": True}, {"blacklisted": True}):
        refresh_record(user, expired=True, **expired)
    live_code = reset_code(user, expired=False)
    reset_code(user, expired=True)
    assert tokens_prune(batch=2) == (3, 1)
    assert set(OutstandingToken.objects.values_list("pk", flat=True)) == live
    assert BlacklistedToken.objects.count() == 1
    assert list(PasswordResetCode.objects.values_list("pk", flat=True)) == [live_code]


def test_deletes_reset_guesses_past_a_code_lifetime(user, settings):
    now = timezone.now()
    for age in (settings.PASSWORD_RESET_CODE_TTL, timedelta(minutes=1)):
        PasswordResetGuess.objects.create(user=user, address="203.0.113.9", created_at=now - age)
    tokens_prune()
    assert list(PasswordResetGuess.objects.values_list("created_at", flat=True)) == [now - timedelta(minutes=1)]


def test_command(user):
    refresh_record(user, expired=True, blacklisted=True)
    reset_code(user, expired=True)
    out = io.StringIO()
    call_command("prune_tokens", stdout=out)
    assert out.getvalue() == "Deleted 1 expired refresh tokens and 1 expired password-reset codes.\n"
    assert not OutstandingToken.objects.exists() and not PasswordResetCode.objects.exists()
