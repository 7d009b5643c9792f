from django.core.management.base import CommandError

from accounts.models import User


def user_named(username):
    """The account with that username (any case), or CommandError."""
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user
