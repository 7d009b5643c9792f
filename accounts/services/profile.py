"""The profile a user edits (nickname, status message, avatar), and bans."""

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services.tokens import user_revoke_tokens
from media.services import avatar_replace
from realtime import events
from realtime.cache import USERS


@transaction.atomic
def user_update_profile(
    *, user: User, nickname: str | None = None, status_message: str | None = None, avatar: str | None = None
) -> User:
    changed = []
    if nickname is not None:
        user.nickname = nickname
        changed.append("nickname")
    if status_message is not None:
        user.status_message = status_message
        changed.append("status_message")
    if avatar is not None:
        user.avatar = avatar_replace(owner=user, old=user.avatar, value=avatar)
        changed.append("avatar")
    if changed:
        user.save(update_fields=changed)
    if nickname is not None:
        events.invalidate_on_commit(USERS, [user.pk])  # the name typing frames carry
    return user


@transaction.atomic
def user_mark_banned(*, user: User, reason: str) -> User:
    """The ban itself: revokes every token and closes the sockets (4403); moderation.services.user_ban
    audits it."""
    user.is_banned = True
    user.banned_at = timezone.now()
    user.ban_reason = reason
    user.save(update_fields=["is_banned", "banned_at", "ban_reason"])
    user_revoke_tokens(user, close_code=4403)
    return user


@transaction.atomic
def user_mark_unbanned(*, user: User) -> User:
    user.is_banned = False
    user.banned_at = None
    user.save(update_fields=["is_banned", "banned_at"])
    return user
