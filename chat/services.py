"""Conversation and message writes. Each ends by recording the events others should see."""

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from accounts.models import User
from accounts.selectors import visible_users
from chat import receipts, search, selectors
from chat.models import Conversation, Membership, Message
from chat.serializers import conversation_settings_data, message_data, message_status_data
from chat.typing import typing_stop_rollback_unsafe
from contacts.selectors import message_refusal, sends_read_receipts
from imserver.api import Conflict, format_id
from media.services import media_discard_if_unused, media_for_attachment, media_mark_attached
from realtime import events
from realtime.cache import MEMBERS

# The newest read receipts sent per sender when one read covers a long backlog; read status is
# cumulative ("read up to here"), so older ones follow from these.
MAX_READ_RECEIPTS_PER_SENDER = 100
READERS_LOCK = 0x7265  # advisory lock class of _one_reader_at_a_time ("re")


def private_conversation_open(
    *, user: User, target_user_id: int | None, check_message: bool = True
) -> tuple[Conversation, bool]:
    """The one private conversation between user and target: (conversation, created).

    Starting one is messaging: 403 when a block or the target's who_can_message refuses it,
    unless check_message is False (a call, which calls.services checks with who_can_call).
    """
    if target_user_id == user.pk:
        raise ValidationError({"target_id": ["You cannot start a conversation with yourself."]})
    target = visible_users().filter(pk=target_user_id).first()
    if target is None:
        raise NotFound("User not found")
    key = f"{min(user.pk, target.pk)}:{max(user.pk, target.pk)}"
    existing = Conversation.objects.filter(private_key=key).first()
    if existing is not None:
        return existing, False
    refusal = check_message and message_refusal(sender_id=user.pk, recipient_id=target.pk)
    if refusal:
        raise PermissionDenied(refusal)
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


def _attachment(*, sender, type, content):
    """The sender's own upload a media message carries (400 for anyone else's or the wrong kind)."""
    if type == Message.Type.TEXT:
        return None
    return media_for_attachment(owner=sender, media_id=content, kind=type, field="content")


# The hot path of every send, in plain SQL (the ORM's query building cost more than the database
# work). First the conversation's lock; then, in a statement of its own so that it sees whatever
# committed while we waited for the lock, membership and an earlier send of the same temp_id.
_SEND_LOCK = "SELECT last_seq FROM chat_conversation WHERE id = %(conversation)s"
_SEND_CHECK = """
SELECT EXISTS (SELECT 1 FROM chat_membership WHERE conversation_id = %(conversation)s AND user_id = %(sender)s),
       (SELECT peer_id FROM chat_membership WHERE conversation_id = %(conversation)s AND user_id = %(sender)s),
       (SELECT id FROM chat_message
        WHERE conversation_id = %(conversation)s AND sender_id = %(sender)s AND temp_id = %(temp_id)s)
"""
_SEND_INSERT = """
INSERT INTO chat_message
    (conversation_id, seq, sender_id, type, content, caption, media_id, call, temp_id, status, created_at)
VALUES (%(conversation)s, %(seq)s, %(sender)s, %(type)s, %(content)s, %(caption)s, %(media)s, %(call)s, %(temp_id)s,
        'sent', %(created_at)s)
RETURNING id
"""
_SEND_ADVANCE = """
UPDATE chat_conversation SET last_seq = %(seq)s, last_message_id = %(message)s, last_activity_at = %(created_at)s
WHERE id = %(conversation)s
"""


def _store(
    *, sender, conversation_id, type, content, caption=None, media=None, call=None, temp_id=None, check_peer=False
):
    """Stores a message with the conversation's next seq: (message, created).

    The conversation row stays locked until commit, so seqs commit in order, and a second send
    with the same temp_id waits for the first and gets its message back (created False). With
    check_peer, a new message in a private conversation is refused (403) when a block or the
    peer's who_can_message says so; group sends cost no query for it.
    """
    params = {"conversation": conversation_id, "sender": sender.pk, "temp_id": temp_id}
    for_update = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(_SEND_LOCK + for_update, params)
        locked = cursor.fetchone()
        cursor.execute(_SEND_CHECK, params)
        is_member, peer_id, earlier_id = cursor.fetchone()
        if locked is None or not is_member:
            raise NotFound("Conversation not found")
        last_seq = locked[0]
        if earlier_id is not None:
            return Message.objects.select_related("sender", "media").get(pk=earlier_id), False
        refusal = check_peer and peer_id is not None and message_refusal(sender_id=sender.pk, recipient_id=peer_id)
        if refusal:
            raise PermissionDenied(refusal)
        message = Message(
            conversation_id=conversation_id,
            seq=last_seq + 1,
            sender=sender,
            type=type,
            content=content,
            caption=caption or "",
            media=media,
            call=call,
            temp_id=temp_id,
        )
        params.update(
            seq=message.seq, type=type, content=content, caption=message.caption, created_at=message.created_at
        )
        params["media"] = media.pk if media else None
        params["call"] = Message._meta.get_field("call").get_db_prep_save(call, connection)
        cursor.execute(_SEND_INSERT, params)
        message.pk = cursor.fetchone()[0]
        cursor.execute(_SEND_ADVANCE, {**params, "message": message.pk})
    return message, True


def new_message_event(message: Message) -> events.Event:
    data = message_data(message)
    temp_id = message.temp_id
    return events.Event(
        selectors.member_ids(message.conversation_id),
        "new_message",
        data,
        own_user_id=message.sender_id if temp_id else None,
        own_data={**data, "temp_id": temp_id} if temp_id else None,
    )


@transaction.atomic
def message_send(
    *,
    sender: User,
    conversation_id: int,
    content: str,
    type: str = Message.Type.TEXT,
    temp_id: str | None = None,
    caption: str | None = None,
) -> tuple[Message, bool]:
    """Sends a message (_store): (message, created)."""
    media = _attachment(sender=sender, type=type, content=content)
    message, created = _store(
        sender=sender,
        conversation_id=conversation_id,
        type=type,
        content=content,
        caption=caption,
        media=media,
        temp_id=temp_id,
        check_peer=True,
    )
    if created:
        if media is not None and not media_mark_attached(media):  # a moderator removed it just now
            raise ValidationError({"content": ["That upload no longer exists."]})
        search.message_index_update(message)
        events.record(new_message_event(message))
        transaction.on_commit(
            lambda: typing_stop_rollback_unsafe(user_id=sender.pk, conversation_id=conversation_id), robust=True
        )
    return message, created


def message_store_call(
    *, caller: User, conversation_id: int, call_id: str, call_type: str, status: str, duration: int | None
) -> Message:
    """The record a finished call leaves in its private conversation, as mobile messengers show
    it: a "call" message from the caller whose content is the call id. Returns the message; the
    calling service records its new_message_event with its own events (one record() per
    transaction)."""
    call = {"call_id": call_id, "type": call_type, "status": status, "duration": duration}
    message, _ = _store(
        sender=caller, conversation_id=conversation_id, type=Message.Type.CALL, content=call_id, call=call
    )
    return message


def conversation_mark_read(*, user: User, conversation_id: int, message_id: int | None) -> Membership:
    """Moves the caller's read pointer forward to message_id (never back) and sends
    message_status "read" to the senders of the messages that thereby became read by all (in a
    private conversation only while the reader has send_read_receipts on). What is read was
    delivered: the delivered pointer follows (conversation_mark_delivered)."""
    with transaction.atomic():
        membership, seq = _pointer_move(user, conversation_id, message_id, "last_read_seq")
        if seq is None:
            return membership
        membership.last_read_seq = seq
        previous_receipt, previous_delivered = membership.receipt_seq, membership.delivered_seq
        # Groups are unaffected by send_read_receipts; a private read without it stays unseen.
        if membership.peer_id is None or sends_read_receipts(user.pk):
            membership.receipt_seq = seq
        membership.delivered_seq = max(seq, previous_delivered)
        membership.save(update_fields=["last_read_seq", "receipt_seq", "delivered_seq"])
        newly_read = []
        if membership.receipt_seq > previous_receipt:
            newly_read = _read_receipts(membership, previous_receipt, membership.receipt_seq)
        events.record(
            *_delivered_receipts(membership, previous_delivered, membership.delivered_seq),
            *newly_read,
            conversation_read_event(membership, timezone.now()),
        )
    return membership


def conversation_mark_delivered(*, user: User, conversation_id: int, message_id: int | None) -> Membership:
    """Moves the caller's delivered pointer forward to message_id (never back): their app has
    stored every message up to it (contract 19). The senders of messages that thereby every
    other member has, and not every one has read, get message_status "delivered", paced by
    chat.receipts."""
    with transaction.atomic():
        membership, seq = _pointer_move(user, conversation_id, message_id, "delivered_seq")
        if seq is None:
            return membership
        previous = membership.delivered_seq
        membership.delivered_seq = seq
        membership.save(update_fields=["delivered_seq"])
        events.record(*_delivered_receipts(membership, previous, seq))
    return membership


def _pointer_move(user, conversation_id, message_id, pointer):
    """(membership, seq of message_id), seq None when `pointer` is there already. Reads and
    deliveries of a conversation are serialized, so each sees the others' pointers."""
    _one_reader_at_a_time(conversation_id)
    membership = Membership.objects.select_for_update().filter(conversation_id=conversation_id, user=user).first()
    if membership is None:
        raise NotFound("Conversation not found")
    seq = Message.objects.filter(pk=message_id, conversation_id=conversation_id).values_list("seq", flat=True)
    seq = seq.first()
    if seq is None:
        raise ValidationError({"message_id": ["Not a message of this conversation."]})
    return membership, seq if seq > getattr(membership, pointer) else None


def _one_reader_at_a_time(conversation_id):
    """Serializes the reads of one conversation (not its sends): two members reading the last
    unread message at once would each see the other's old pointer, and nobody would send the
    sender its "read". A transaction-scoped advisory lock; SQLite serializes writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [READERS_LOCK, conversation_id & 0x7FFFFFFF])


def _read_receipts(membership, previous, seq):
    newly_read = selectors.messages_read_by_all(
        conversation_id=membership.conversation_id,
        reader_id=membership.user_id,
        after=previous,
        upto=seq,
        per_sender=MAX_READ_RECEIPTS_PER_SENDER,
    )
    now = timezone.now()
    sent = []
    for message_id, sender_id in newly_read:
        data = message_status_data(
            message_id=message_id, conversation_id=membership.conversation_id, status="read", updated_at=now
        )
        sent.append(events.Event([sender_id], "message_status", data))
    sent.reverse()  # oldest first: ids follow the order messages were read in
    return sent


def _delivered_event(*, sender_id, conversation_id, message_id):
    data = message_status_data(
        message_id=message_id, conversation_id=conversation_id, status="delivered", updated_at=timezone.now()
    )
    return events.Event([sender_id], "message_status", data)


def _delivered_receipts(membership, previous, seq):
    """The "delivered" a move of the delivered pointer sends now; those in a sender's window
    wait for the flush (chat.receipts)."""
    if seq <= previous:
        return []
    conversation_id = membership.conversation_id
    newly = selectors.messages_newly_delivered(
        conversation_id=conversation_id, reader_id=membership.user_id, after=previous, upto=seq
    )
    return [
        _delivered_event(sender_id=sender_id, conversation_id=conversation_id, message_id=message_id)
        for message_id, sender_id in newly
        if receipts.pacing().receipt(sender_id, conversation_id, message_id)
    ]


def delivered_flush() -> int:
    """Sends the "delivered" held back in windows that ended (any process may run it; a held
    one that read covered meanwhile is dropped); returns how many were sent."""
    sent = 0
    pacing = receipts.pacing()
    for sender_id, conversation_id, message_id in pacing.claim_due():
        with transaction.atomic():
            _one_reader_at_a_time(conversation_id)  # a read committing now comes after
            if message_id and selectors.message_delivery_pending(
                conversation_id=conversation_id, message_id=message_id
            ):
                events.record(
                    _delivered_event(sender_id=sender_id, conversation_id=conversation_id, message_id=message_id)
                )
                sent += 1
        pacing.done(sender_id, conversation_id, message_id)
    return sent


def conversation_read_event(membership, updated_at):
    """The reader's own devices learn the new read pointer (contract 13) and clear what they show."""
    last_read = selectors.message_id_at(membership.conversation_id, membership.last_read_seq)
    return events.Event(
        [membership.user_id],
        "conversation_read",
        {
            "conversation_id": format_id("c", membership.conversation_id),
            "last_read_message_id": format_id("m", last_read),
            "unread_count": selectors.unread_count(membership),
            "mention_count": 0,  # mentions (contract 18) count here once messages carry them
            "updated_at": updated_at,
        },
    )


@transaction.atomic
def message_remove(*, message: Message) -> bool:
    """Removes a message (moderation, contract 10): it stays in history as `removed` with no
    content or caption, and every member gets message_status "removed".

    Returns False, changing nothing, when it already was removed. The conversation row lock
    serializes this with sends and membership changes, so the members told are the members.
    """
    Conversation.objects.select_for_update().filter(pk=message.conversation_id).first()
    message.refresh_from_db(fields=["status"])
    if message.status == Message.Status.REMOVED:
        return False
    upload_id = message.media_id
    message.status = Message.Status.REMOVED
    message.content = ""
    message.caption = ""
    message.media = None
    message.updated_at = timezone.now()
    message.save(update_fields=["status", "content", "caption", "media", "updated_at"])
    search.message_index_remove(message)
    if upload_id is not None:
        # What a moderator removes is not kept anywhere (after the conversation lock: the order
        # sends take them in).
        media_discard_if_unused(upload_id, in_use=selectors.media_in_use)
    data = message_status_data(
        message_id=message.pk,
        conversation_id=message.conversation_id,
        status=Message.Status.REMOVED,
        updated_at=message.updated_at,
    )
    events.record(events.Event(selectors.member_ids(message.conversation_id), "message_status", data))
    return True


MAX_PINNED = 20  # pinned conversations a user may have (contract 17)


@transaction.atomic
def conversation_settings_update(*, user, conversation_id, **changes):
    """Changes the caller's own settings of a conversation (ConversationSettingsIn's keys) and
    tells their devices (conversation_settings); returns the conversation's list item."""
    # The user's row serializes their pins, so the cap holds under concurrent requests.
    User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    membership = Membership.objects.select_for_update().filter(conversation_id=conversation_id, user=user).first()
    if membership is None:
        raise NotFound("Conversation not found")
    if "muted" in changes:
        membership.muted = changes["muted"]
        membership.muted_until = None  # unmuted, or muted until unmuted unless an end follows
    if changes.get("muted_until") is not None:
        membership.muted, membership.muted_until = True, changes["muted_until"]
    elif "muted_until" in changes:
        membership.muted_until = None
    if "notify" in changes:
        membership.notify = changes["notify"]
    if changes.get("pinned") and membership.pinned_at is None:
        if Membership.objects.filter(user=user, pinned_at__isnull=False).count() >= MAX_PINNED:
            raise Conflict(f"At most {MAX_PINNED} conversations can be pinned")
        membership.pinned_at = timezone.now()
    elif changes.get("pinned") is False:
        membership.pinned_at = None
    if "hidden" in changes:
        last_seq = Conversation.objects.filter(pk=conversation_id).values_list("last_seq", flat=True).get()
        membership.hidden_seq = last_seq if changes["hidden"] else None
    membership.save(update_fields=["muted", "muted_until", "notify", "pinned_at", "hidden_seq"])
    item = selectors.conversation_item(user=user, conversation_id=conversation_id)
    data = {"conversation_id": format_id("c", conversation_id), "settings": conversation_settings_data(item)}
    events.record(events.Event([user.pk], "conversation_settings", data))
    return item


def erase_user(user: User) -> None:
    """An erased account's remaining (private) memberships go; the other participant keeps the
    history, with "Deleted user" (privacy.services.user_delete, after it left its groups)."""
    memberships = Membership.objects.filter(user=user)
    events.invalidate_on_commit(MEMBERS, memberships.values_list("conversation_id", flat=True))
    memberships.delete()
