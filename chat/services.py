"""Conversation and message writes. Each ends by recording the events others should see."""

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from accounts.selectors import visible_users
from chat import selectors
from chat.models import Conversation, Membership, Message
from chat.serializers import message_data
from imserver.api import format_id
from realtime import events

# The newest read receipts sent per sender when one read covers a long backlog; read status is
# cumulative ("read up to here"), so older ones follow from these.
MAX_READ_RECEIPTS_PER_SENDER = 100


def private_conversation_open(*, user, target_user_id):
    """The one private conversation between user and target: (conversation, created)."""
    if target_user_id == user.pk:
        raise ValidationError({"target_id": ["You cannot start a conversation with yourself."]})
    target = visible_users().filter(pk=target_user_id).first()
    if target is None:
        raise NotFound("User not found")
    key = f"{min(user.pk, target.pk)}:{max(user.pk, target.pk)}"
    existing = Conversation.objects.filter(private_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(type=Conversation.Type.PRIVATE, private_key=key)
            Membership.objects.bulk_create(
                [
                    Membership(conversation=conversation, user=user, peer=target),
                    Membership(conversation=conversation, user=target, peer=user),
                ]
            )
    except IntegrityError:  # the other side opened it at the same moment
        return Conversation.objects.get(private_key=key), False
    return conversation, True


def _check_content(*, sender, type, content, caption):
    if type != Message.Type.TEXT:
        raise ValidationError({"type": [f"'{type}' messages are not supported yet: upload support is coming."]})
    return content, caption or ""


@transaction.atomic
def message_send(*, sender, conversation_id, content, type=Message.Type.TEXT, temp_id=None, caption=None):
    """Stores a message with the conversation's next seq: (message, created).

    The conversation row stays locked until commit, so seqs commit in order, and a second send
    with the same temp_id waits for the first and gets its message back (created False).
    """
    content, caption = _check_content(sender=sender, type=type, content=content, caption=caption)
    conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    members = selectors.member_ids(conversation_id) if conversation else []
    if sender.pk not in members:
        raise NotFound("Conversation not found")
    if temp_id:
        existing = Message.objects.filter(conversation=conversation, sender=sender, temp_id=temp_id).first()
        if existing is not None:
            return existing, False
    seq = conversation.last_seq + 1
    message = Message.objects.create(
        conversation=conversation, seq=seq, sender=sender, type=type, content=content, caption=caption, temp_id=temp_id
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        last_seq=seq, last_message=message, last_activity_at=message.created_at
    )
    data = message_data(message)
    events.record(
        events.Event(
            members,
            "new_message",
            data,
            own_user_id=sender.pk if temp_id else None,
            own_data={**data, "temp_id": temp_id} if temp_id else None,
        )
    )
    return message, True


def conversation_mark_read(*, user, conversation_id, message_id):
    """Moves the caller's read pointer forward to message_id (never back) and sends
    message_status "read" to the senders of the messages that thereby became read by all."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(conversation_id=conversation_id, user=user).first()
        if membership is None:
            raise NotFound("Conversation not found")
        seq = Message.objects.filter(pk=message_id, conversation_id=conversation_id).values_list("seq", flat=True)
        seq = seq.first()
        if seq is None:
            raise ValidationError({"message_id": ["Not a message of this conversation."]})
        if seq <= membership.last_read_seq:
            return membership
        previous = membership.last_read_seq
        membership.last_read_seq = seq
        membership.save(update_fields=["last_read_seq"])
        _notify_read(membership, previous, seq)
    return membership


def _notify_read(membership, previous, seq):
    is_read = selectors.read_horizon(membership.conversation_id)
    newly_read = (
        Message.objects.filter(conversation_id=membership.conversation_id, seq__gt=previous, seq__lte=seq)
        .exclude(sender_id=membership.user_id)
        .exclude(status=Message.Status.REMOVED)
        .order_by("-seq")
        .values_list("pk", "seq", "sender_id")
    )
    now = timezone.now()
    receipts, per_sender = [], {}
    for message_id, message_seq, sender_id in newly_read:
        if not is_read(message_seq, sender_id) or per_sender.get(sender_id, 0) >= MAX_READ_RECEIPTS_PER_SENDER:
            continue
        per_sender[sender_id] = per_sender.get(sender_id, 0) + 1
        data = {
            "message_id": format_id("m", message_id),
            "conversation_id": format_id("c", membership.conversation_id),
            "status": "read",
            "updated_at": now,
        }
        receipts.append(events.Event([sender_id], "message_status", data))
    receipts.reverse()  # oldest first: ids follow the order messages were read in
    events.record(*receipts)


@transaction.atomic
def message_remove(*, message):
    """Removes a message (moderation, contract 10): it stays in history as `removed` with no
    content or caption, and every member gets message_status "removed".

    Returns False, changing nothing, when it already was removed. The conversation row lock
    serializes this with sends and membership changes, so the members told are the members.
    """
    Conversation.objects.select_for_update().filter(pk=message.conversation_id).first()
    message.refresh_from_db(fields=["status"])
    if message.status == Message.Status.REMOVED:
        return False
    message.status = Message.Status.REMOVED
    message.content = ""
    message.caption = ""
    message.updated_at = timezone.now()
    message.save(update_fields=["status", "content", "caption", "updated_at"])
    data = {
        "message_id": format_id("m", message.pk),
        "conversation_id": format_id("c", message.conversation_id),
        "status": Message.Status.REMOVED,
        "updated_at": message.updated_at,
    }
    events.record(events.Event(selectors.member_ids(message.conversation_id), "message_status", data))
    return True
