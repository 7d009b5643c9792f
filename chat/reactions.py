"""Reactions (contract 18): one emoji per user and emoji on a message, at most MAX_EMOJI distinct
emoji a message, and `reaction_update` to the members (durable, never pushed)."""

import emoji as emoji_data
from django.db import transaction
from django.db.models import F
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from chat import selectors
from chat.models import Message, Reaction
from imserver.api import Conflict, format_id
from realtime import events

MAX_EMOJI = 20  # distinct emoji on one message


def emoji_valid(value: str) -> str:
    """The value if it is exactly one emoji grapheme (a ZWJ sequence, a skin tone, a flag or a
    keycap included) as the Unicode emoji data lists it; text, two emoji or nothing: 400."""
    if not emoji_data.is_emoji(value):
        raise ValidationError({"emoji": ["Must be exactly one emoji."]})
    return value


def _message_locked(*, user: User, conversation_id: int, message_id: int | None) -> Message:
    """The caller's conversation's message, its row locked (reactions on it are serialized, so the
    cap holds); 404 for "missing or not yours", 409 for a removed message."""
    selectors.membership_for(user=user, conversation_id=conversation_id)
    message = Message.objects.select_for_update().filter(pk=message_id, conversation_id=conversation_id).first()
    if message is None:
        raise NotFound("Message not found")
    if message.status == Message.Status.REMOVED:
        raise Conflict("The message was removed")
    return message


def _count(message: Message, change: int) -> None:
    """Message.reaction_count in step with the rows, under the message's row lock."""
    Message.objects.filter(pk=message.pk).update(reaction_count=F("reaction_count") + change)


def _reaction_update(message: Message, user: User, emoji: str, action: str) -> None:
    count = Reaction.objects.filter(message=message, emoji=emoji).count()
    data = {
        "conversation_id": format_id("c", message.conversation_id),
        "message_id": format_id("m", message.pk),
        "emoji": emoji,
        "user_id": str(user.pk),
        "action": action,
        "count": count,
    }
    events.record(events.Event(selectors.member_ids(message.conversation_id), "reaction_update", data))


@transaction.atomic
def reaction_add(*, user: User, conversation_id: int, message_id: int | None, emoji: str) -> list[dict]:
    """Adds the caller's emoji (idempotent: again changes nothing and tells nobody); 409 when it
    would be the message's 21st distinct emoji. Returns the message's reactions for the caller."""
    message = _message_locked(user=user, conversation_id=conversation_id, message_id=message_id)
    if not Reaction.objects.filter(message=message, user=user, emoji=emoji).exists():
        known = Reaction.objects.filter(message=message, emoji=emoji).exists()
        if not known and selectors.reaction_emoji_count(message.pk) >= MAX_EMOJI:
            raise Conflict(f"A message has at most {MAX_EMOJI} different reactions")
        Reaction.objects.create(message=message, user=user, emoji=emoji)
        _count(message, 1)
        _reaction_update(message, user, emoji, "add")
    return selectors.reactions_of([message.pk], viewer_id=user.pk).get(message.pk, [])


@transaction.atomic
def reaction_remove(*, user: User, conversation_id: int, message_id: int | None, emoji: str) -> list[dict]:
    """Takes the caller's emoji back (none there: nothing changes, nobody is told). Returns the
    message's reactions for the caller."""
    message = _message_locked(user=user, conversation_id=conversation_id, message_id=message_id)
    deleted, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
    if deleted:
        _count(message, -deleted)
        _reaction_update(message, user, emoji, "remove")
    return selectors.reactions_of([message.pk], viewer_id=user.pk).get(message.pk, [])


def reactions_erase(user: User) -> None:
    """An erased account's reactions go (privacy.services.user_delete, through
    chat.services.erase_user): each message's members get reaction_update "remove" with the new
    count, as if the user had taken each back, the messages' rows locked in id order as the
    reaction services lock them."""
    message_ids = sorted(set(Reaction.objects.filter(user=user).values_list("message_id", flat=True)))
    for message in Message.objects.select_for_update().filter(pk__in=message_ids).order_by("pk"):
        emoji = list(Reaction.objects.filter(message=message, user=user).values_list("emoji", flat=True))
        Reaction.objects.filter(message=message, user=user).delete()
        _count(message, -len(emoji))
        for one in emoji:
            _reaction_update(message, user, one, "remove")
