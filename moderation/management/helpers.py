from django.core.management.base import CommandError

from accounts.normalization import user_matching


def user_named(username):
    """The account with that username (any case), or CommandError."""
    user = user_matching("username", username)
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user
