"""Registration of an account with a username and password."""

import re

from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from accounts.models import DELETED_USERNAME_RE, DELETED_USERNAME_RESERVED, User
from accounts.normalization import user_matching
from accounts.services.email import email_confirmation_send
from accounts.services.passwords import validate_new_password
from imserver.api import Conflict

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")


@transaction.atomic
def user_register(*, username: str, password: str, email: str, nickname: str = "") -> User:
    if not USERNAME_RE.match(username):
        raise ValidationError({"username": ["Username must be 3-32 characters of letters, digits, '_', '.' or '-'."]})
    if DELETED_USERNAME_RE.match(username):
        raise ValidationError({"username": [DELETED_USERNAME_RESERVED]})
    candidate = User(username=username, email=email, nickname=nickname or username)
    validate_new_password(password, candidate)
    if user_matching("username", username):
        raise Conflict("Username is already taken")
    if user_matching("email", email):
        raise Conflict("Email is already registered")
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:  # lost a race with an identical registration
        raise Conflict("Username or email is already registered") from None
    email_confirmation_send(candidate)
    return candidate
