"""Forwarding (contract 18): copies of messages, sent by the forwarder into other conversations.

A copy is a new message of the forwarder's, with `forwarded_from` naming the original's sender
and time. A media copy carries the same upload, which every member of the target can then open
(media is served to whoever can read a message that carries it); nothing is uploaded again, and
a later recall of the original leaves the copies and their upload alone (an upload is deleted
only when no message uses it any more, chat.selectors.media_in_use).
"""

from django.db import transaction
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from chat.models import Membership, Message
from chat.services import message_store, new_message_event
from realtime import events

MAX_SOURCES = 20
MAX_TARGETS = 9


def _sources(forwarder: User, message_ids: list[int | None]) -> list[Message]:
    """The messages to forward, in the order asked: each in one of the forwarder's conversations
    (404 otherwise), none removed and none a call record (400)."""
    found = Message.objects.select_related("sender", "media").filter(
        pk__in=[pk for pk in message_ids if pk is not None],
        conversation__memberships__user=forwarder,
    )
    by_id = {message.pk: message for message in found}
    if any(pk not in by_id for pk in message_ids):
        raise NotFound("Message not found")
    sources = [by_id[pk] for pk in message_ids]
    if any(message.status == Message.Status.REMOVED for message in sources):
        raise ValidationError({"message_ids": ["A removed message cannot be forwarded."]})
    if any(message.type == Message.Type.CALL for message in sources):
        raise ValidationError({"message_ids": ["A call record cannot be forwarded."]})
    return sources


def _original(message: Message) -> tuple[str, object]:
    """(sender name, created_at) of the message a copy names: a copy of a copy names the first."""
    if message.forwarded_created_at is not None:
        return message.forwarded_sender_name, message.forwarded_created_at
    return message.sender.display_name, message.created_at


@transaction.atomic
def messages_forward(
    *, forwarder: User, message_ids: list[int | None], conversation_ids: list[int | None], temp_id: str | None = None
) -> tuple[list[Message], bool]:
    """One copy of each source in each target conversation: (copies, created), the copies by
    target then by source, in the order asked.

    The forwarder must be a member of every source's and every target's conversation (404), and
    each target is a send (message_store): its lock, a block or who_can_message refusing a private one
    (403). The targets are locked in id order, so concurrent forwards cannot deadlock. With a
    temp_id, copy n of a target is stored with temp_id "<temp_id>/<n>", so a repeat finds every
    copy it made and gets them back (created False), as a repeated send does.
    """
    sources = _sources(forwarder, message_ids)
    targets = list(dict.fromkeys(conversation_ids))
    members_of = set(
        Membership.objects.filter(
            user=forwarder, conversation_id__in=[c for c in targets if c is not None]
        ).values_list("conversation_id", flat=True)
    )
    if any(conversation_id not in members_of for conversation_id in targets):
        raise NotFound("Conversation not found")
    copies, new = {}, []
    for conversation_id in sorted(targets):
        for index, source in enumerate(sources):
            copy, created, member_ids = message_store(
                sender=forwarder,
                conversation_id=conversation_id,
                type=source.type,
                content=source.content,
                caption=source.caption,
                media=source.media,
                temp_id=None if temp_id is None else f"{temp_id}/{index}",
                check_peer=True,
                forwarded_from=_original(source),
            )
            copies[conversation_id, index] = copy
            if created:
                new.append((copy, member_ids))
    events.record(*(new_message_event(copy, member_ids) for copy, member_ids in sorted(new, key=lambda n: n[0].pk)))
    return [copies[conversation_id, index] for conversation_id in targets for index in range(len(sources))], bool(new)
