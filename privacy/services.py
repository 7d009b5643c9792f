"""A user's data as a whole: erasing an account and exporting what we store about it.

Each app declares its own part (`erase_user(user)` in its services, `export_sections(user)` in its
selectors), so the list of what we store about a user is kept where the data is.
"""

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts import selectors as accounts_selectors
from accounts import services as accounts_services
from accounts.models import User
from calls import selectors as calls_selectors
from chat import selectors as chat_selectors
from chat import services as chat_services
from contacts import selectors as contacts_selectors
from contacts import services as contacts_services
from groups import services as groups_services
from media import selectors as media_selectors
from moderation import selectors as moderation_selectors
from moderation import services as moderation_services
from realtime import services as realtime_services

# In the order of the export's sections.
EXPORTERS = [
    accounts_selectors,
    contacts_selectors,
    chat_selectors,
    moderation_selectors,
    media_selectors,
    calls_selectors,
]


def user_delete(*, user: User, actor: User | str | None = None, reason: str = "") -> User:
    """Erases an account, leaving an anonymous tombstone (README, "Deleting an account").

    Personal data goes at once, in one transaction: profile, password, contacts both ways,
    social-auth links; tokens are revoked and sockets closed. Then the user leaves each group in
    a transaction of its own and their private memberships and event log are deleted. Their
    messages stay in the conversations, from "Deleted user". Safe to run again if interrupted.

    By a moderator (`actor`: a staff user, or a command's "cli:<name>"), moderation's rules say
    whether they may, and the audit log records it once it is done, under the tombstone's name,
    so the log keeps no personal data of it.
    """
    if actor is not None:
        moderation_services.check_may_act_on(actor, user)
    with transaction.atomic():
        user = accounts_services.erase_user(user)
        contacts_services.erase_user(user)
    groups_services.erase_user(user)
    with transaction.atomic():
        chat_services.erase_user(user)
        realtime_services.erase_user(user)
    if actor is not None:
        moderation_services.user_delete_audit(actor=actor, user=user, reason=reason)
    return user


def user_delete_own(*, user: User, address: str, password: str | None = None) -> User:
    """DELETE /v1/user/me: the password confirms it, unless the account has none (OAuth only).
    Wrong passwords count toward the login lockout (429 past it)."""
    if user.has_usable_password():
        if password is None:
            raise ValidationError({"password": ["Your password is required to delete your account."]})
        if not accounts_services.password_confirm(user=user, password=password, address=address):
            raise ValidationError({"password": ["Password is incorrect."]})
    return user_delete(user=user)


def user_export(user: User) -> dict:
    """{section: data} with `exported_at` first; sections may be generators, read as written out."""
    sections = {}
    for app in EXPORTERS:
        sections.update(app.export_sections(user))
    return {"exported_at": timezone.now(), **sections}
