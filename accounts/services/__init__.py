"""Account writes, a module per concern; the public names are importable from here."""

from accounts.services.email import email_confirm, email_confirmation_send
from accounts.services.erasure import DELETED_USER_NAME, erase_user
from accounts.services.login import (
    INVALID_CREDENTIALS,
    admin_login,
    password_confirm,
    totp_device_confirm,
    totp_device_start,
    user_login,
)
from accounts.services.passwords import (
    mail_sender,
    password_reset_confirm,
    password_reset_request,
    user_password_change,
    user_password_set,
    validate_new_password,
)
from accounts.services.profile import user_mark_banned, user_mark_unbanned, user_update_profile
from accounts.services.registration import USERNAME_RE, user_register
from accounts.services.tokens import token_logout, token_refresh, tokens_prune, user_revoke_tokens

__all__ = [
    "DELETED_USER_NAME",
    "INVALID_CREDENTIALS",
    "USERNAME_RE",
    "admin_login",
    "email_confirm",
    "email_confirmation_send",
    "erase_user",
    "mail_sender",
    "password_confirm",
    "password_reset_confirm",
    "password_reset_request",
    "token_logout",
    "token_refresh",
    "tokens_prune",
    "totp_device_confirm",
    "totp_device_start",
    "user_mark_banned",
    "user_mark_unbanned",
    "user_login",
    "user_password_change",
    "user_password_set",
    "user_register",
    "user_revoke_tokens",
    "user_update_profile",
    "validate_new_password",
]
