"""Conversation and message writes. Each ends by recording the events others should see."""

from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from accounts.models import User
from accounts.selectors import visible_users
from chat import reactions, receipts, search, selectors
from chat.models import Conversation, Membership, Mention, Message, MessageEdit, MessageHidden, Reaction
from chat.serializers import (
    conversation_settings_data,
    message_data,
    message_status_data,
    messages_data,
    reply_to_data,
)
from chat.typing import typing_stop_rollback_unsafe
from contacts.selectors import message_refusal, sends_read_receipts
from imserver import rows
from imserver.api import Conflict, format_id, parse_id
from media.models import Media
from media.services import media_discard_if_unused, media_for_attachment, media_mark_attached
from realtime import events
from realtime.cache import MEMBERS
from realtime.services import message_events_rewrite

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
# committed while we waited for the lock, the members (the sender among them, or not; the event's
# audience) and an earlier send of the same temp_id.
_SEND_LOCK = "SELECT last_seq FROM chat_conversation WHERE id = %(conversation)s"
_SEND_CHECK = """
SELECT user_id, peer_id,
       (SELECT id FROM chat_message
        WHERE conversation_id = %(conversation)s AND sender_id = %(sender)s AND temp_id = %(temp_id)s)
FROM chat_membership WHERE conversation_id = %(conversation)s
"""
_SEND_INSERT = """
INSERT INTO chat_message
    (conversation_id, seq, sender_id, type, content, caption, media_id, call, temp_id, status, created_at,
     reply_to_id, mentions, mentions_all, forwarded_sender_name, forwarded_created_at)
VALUES (%(conversation)s, %(seq)s, %(sender)s, %(type)s, %(content)s, %(caption)s, %(media)s, %(call)s, %(temp_id)s,
        'sent', %(created_at)s, %(reply_to)s, %(mentions)s, %(mentions_all)s, %(forwarded_sender_name)s,
        %(forwarded_created_at)s)
RETURNING id
"""
_SEND_ADVANCE = """
UPDATE chat_conversation SET last_seq = %(seq)s, last_message_id = {message_id}, last_activity_at = %(created_at)s
WHERE id = %(conversation)s
"""


class StoredMessage(NamedTuple):
    message: Message
    created: bool  # False: an earlier send of the same temp_id, returned again
    member_ids: list[int]  # the conversation's members under the send's lock: its event's audience


def message_store(
    *,
    sender: User,
    conversation_id: int,
    type: str,
    content: str,
    caption: str | None = None,
    media: Media | None = None,
    call: models.Model | None = None,
    temp_id: str | None = None,
    check_peer: bool = False,
    reply_to: int | None = None,
    mentions: list[str] | None = None,
    forwarded_from: tuple[str, datetime] | None = None,
) -> StoredMessage:
    """Stores a message with the conversation's next seq.

    The conversation row stays locked until commit, so seqs commit in order, and a second send
    with the same temp_id waits for the first and gets its message back (created False). With
    check_peer, a new message in a private conversation is refused (403) when a block or the
    peer's who_can_message says so; group sends cost no query for it. reply_to (a message id)
    and mentions (as sent) are checked under the lock, so a recall or a member leaving either
    happened before and is seen, or waits for this message. forwarded_from is (sender name,
    created_at) of a forwarded copy's original.
    """
    params = {"conversation": conversation_id, "sender": sender.pk, "temp_id": temp_id}
    for_update = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(_SEND_LOCK + for_update, params)
        locked = cursor.fetchone()
        cursor.execute(_SEND_CHECK, params)
        members = cursor.fetchall()
        member_ids = [user_id for user_id, _, _ in members]
        if locked is None or sender.pk not in member_ids:
            raise NotFound("Conversation not found")
        last_seq = locked[0]
        peer_id = next(peer_id for user_id, peer_id, _ in members if user_id == sender.pk)
        earlier_id = members[0][2]
        if earlier_id is not None:
            earlier = Message.objects.select_related("sender", "media", "reply_to__sender").get(pk=earlier_id)
            return StoredMessage(earlier, False, member_ids)
        refusal = check_peer and peer_id is not None and message_refusal(sender_id=sender.pk, recipient_id=peer_id)
        if refusal:
            raise PermissionDenied(refusal)
        original = _reply_target(conversation_id, reply_to) if reply_to is not None else None
        mentioned, mentions_all = (
            mentions_validated(conversation_id=conversation_id, sender=sender, raw=mentions)
            if mentions
            else ([], False)
        )
        forwarded_sender_name, forwarded_created_at = forwarded_from or (None, None)
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
            reply_to=original,
            mentions=mentioned,
            mentions_all=mentions_all,
            forwarded_sender_name=forwarded_sender_name,
            forwarded_created_at=forwarded_created_at,
        )
        params.update(
            seq=message.seq,
            type=type,
            content=content,
            caption=message.caption,
            created_at=message.created_at,
            reply_to=reply_to,
            mentions_all=mentions_all,
            forwarded_sender_name=message.forwarded_sender_name,
            forwarded_created_at=message.forwarded_created_at,
        )
        params["media"] = media.pk if media else None
        for field in ("call", "mentions"):
            params[field] = Message._meta.get_field(field).get_db_prep_save(getattr(message, field), connection)
        # Indexed by it too, and the conversation advanced to it.
        message.pk = search.message_insert(cursor, _SEND_INSERT, params, message, then=_SEND_ADVANCE)
    if mentioned:
        Mention.objects.bulk_create([Mention(message_id=message.pk, user_id=user_id) for user_id in mentioned])
    return StoredMessage(message, True, member_ids)


def _reply_target(conversation_id, message_id):
    """The message a reply answers: one of this conversation, not removed (else 400)."""
    original = Message.objects.select_related("sender").filter(pk=message_id, conversation_id=conversation_id).first()
    if original is None:
        raise ValidationError({"reply_to": ["Not a message of this conversation."]})
    if original.status == Message.Status.REMOVED:
        raise ValidationError({"reply_to": ["That message was removed."]})
    return original


def mentions_validated(*, conversation_id: int, sender: User, raw: list[str]) -> tuple[list[int], bool]:
    """(mentioned user ids, mentions_all) from a request's `mentions` (contract 18): members'
    user ids, and "all" in a group from its owner or an admin. A non-member (or anything that is
    not a user id): 400; "all" from a plain member: 403; in a private conversation: 400. One
    query. For sends, and for edits that carry mentions."""
    mentions_all = "all" in raw
    wanted = {parse_id("", value) for value in raw if value != "all"}
    members = Membership.objects.filter(conversation_id=conversation_id, user_id__in=wanted | {sender.pk})
    rows = {user_id: (role, peer_id) for user_id, role, peer_id in members.values_list("user_id", "role", "peer_id")}
    if None in wanted or not wanted <= rows.keys():
        raise ValidationError({"mentions": ["Only members of the conversation can be mentioned."]})
    if mentions_all:
        role, peer_id = rows.get(sender.pk, (None, None))
        if peer_id is not None:  # a private conversation
            raise ValidationError({"mentions": ['"all" is for groups.']})
        if role not in (Membership.Role.OWNER, Membership.Role.ADMIN):
            raise PermissionDenied('Only the group\'s owner and admins may mention "all".')
    return sorted(wanted), mentions_all


def new_message_event(message: Message, member_ids: list[int] | None = None) -> events.Event:
    """The new_message event of a stored message, to member_ids (message_store's) or, without
    them, to the members read now."""
    # A reply shows whether its original was read: the same for every member, so asked once.
    status_of = selectors.read_horizon(message.conversation_id) if message.reply_to_id is not None else None
    data = message_data(message, status_of=status_of)
    temp_id = message.temp_id
    return events.Event(
        member_ids if member_ids is not None else selectors.member_ids(message.conversation_id),
        "new_message",
        data,
        own_user_id=message.sender_id if temp_id else None,
        own_data={**data, "temp_id": temp_id} if temp_id else None,
        message_id=message.pk,
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
    reply_to: int | None = None,
    mentions: list[str] | None = None,
) -> tuple[Message, bool]:
    """Sends a message (message_store): (message, created). reply_to is a message id of the
    conversation, mentions the request's list (mentions_validated)."""
    media = _attachment(sender=sender, type=type, content=content)
    message, created, member_ids = message_store(
        sender=sender,
        conversation_id=conversation_id,
        type=type,
        content=content,
        caption=caption,
        media=media,
        temp_id=temp_id,
        check_peer=True,
        reply_to=reply_to,
        mentions=mentions,
    )
    if created:
        if media is not None and not media_mark_attached(media):  # a moderator removed it just now
            raise ValidationError({"content": ["That upload no longer exists."]})
        events.record(new_message_event(message, member_ids))
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
    return message_store(
        sender=caller, conversation_id=conversation_id, type=Message.Type.CALL, content=call_id, call=call
    ).message


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
        _pointers_save(membership, "last_read_seq", "receipt_seq", "delivered_seq")
        pointers = selectors.lowest_pointers(conversation_id)
        newly_read = []
        if membership.receipt_seq > previous_receipt:
            newly_read = _read_receipts(membership, previous_receipt, membership.receipt_seq, pointers)
        events.record(
            *_delivered_receipts(membership, previous_delivered, membership.delivered_seq, pointers),
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
        _pointers_save(membership, "delivered_seq")
        events.record(*_delivered_receipts(membership, previous, seq, selectors.lowest_pointers(conversation_id)))
    return membership


def _pointer_move(user, conversation_id, message_id, pointer):
    """(membership, seq of message_id), seq None when `pointer` is there already. Reads and
    deliveries of a conversation are serialized, so each sees the others' pointers."""
    _one_reader_at_a_time(conversation_id)
    membership = _membership_locked(conversation_id, user.pk)
    if membership is None:
        raise NotFound("Conversation not found")
    seq = selectors.message_seq(conversation_id, message_id)
    if seq is None:
        raise ValidationError({"message_id": ["Not a message of this conversation."]})
    return membership, seq if seq > getattr(membership, pointer) else None


# Plain SQL (imserver.rows): every read and delivered ack locks the reader's membership and
# moves its pointers, and the ORM's building of these two statements cost more than running them.
_MEMBERSHIP_LOCKED = "SELECT {columns} FROM chat_membership mb WHERE mb.conversation_id = %s AND mb.user_id = %s"


def _membership_locked(conversation_id, user_id):
    sql = _MEMBERSHIP_LOCKED.format(columns=rows.columns(Membership, "mb"))
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [conversation_id, user_id])
        row = cursor.fetchone()
    return rows.instance(Membership, "mb", row) if row else None


def _pointers_save(membership, *pointers):
    """Writes these pointer fields (plain integer columns) of the membership."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE chat_membership SET {', '.join(f'{pointer} = %s' for pointer in pointers)} WHERE id = %s",
            [*(getattr(membership, pointer) for pointer in pointers), membership.pk],
        )


def _one_reader_at_a_time(conversation_id):
    """Serializes the reads of one conversation (not its sends): two members reading the last
    unread message at once would each see the other's old pointer, and nobody would send the
    sender its "read". A transaction-scoped advisory lock; SQLite serializes writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [READERS_LOCK, conversation_id & 0x7FFFFFFF])


def _read_receipts(membership, previous, seq, pointers):
    newly_read = selectors.messages_read_by_all(
        conversation_id=membership.conversation_id,
        reader_id=membership.user_id,
        after=previous,
        upto=seq,
        per_sender=MAX_READ_RECEIPTS_PER_SENDER,
        pointers=pointers,
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


def _delivered_receipts(membership, previous, seq, pointers):
    """The "delivered" a move of the delivered pointer sends now; those in a sender's window
    wait for the flush (chat.receipts)."""
    if seq <= previous:
        return []
    conversation_id = membership.conversation_id
    newly = selectors.messages_newly_delivered(
        conversation_id=conversation_id, reader_id=membership.user_id, after=previous, upto=seq, pointers=pointers
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


def conversation_read_event(membership: Membership, updated_at: datetime) -> None:
    """The reader's own devices learn the new read pointer (contract 13) and clear what they show."""
    last_read = selectors.message_id_at(membership.conversation_id, membership.last_read_seq)
    unread, mentioned = selectors.membership_counts(membership)
    return events.Event(
        [membership.user_id],
        "conversation_read",
        {
            "conversation_id": format_id("c", membership.conversation_id),
            "last_read_message_id": format_id("m", last_read),
            "unread_count": unread,
            "mention_count": mentioned,
            "updated_at": updated_at,
        },
    )


MAX_EDITS = 20  # edits a message may have (contract 15)


def _locked_message(*, user: User, conversation_id: int, message_id: int | None) -> tuple[Membership, Message]:
    """The caller's membership and a message of the conversation (404 for "missing or not
    yours"), with the conversation row locked as message_remove locks it: edits, recalls,
    removals and sends of one conversation take their turns."""
    membership = selectors.membership_for(user=user, conversation_id=conversation_id)
    Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    message = (
        Message.objects.select_related("sender", "media", "reply_to__sender")
        .filter(pk=message_id, conversation_id=conversation_id)
        .first()
    )
    if message is None:
        raise NotFound("Message not found")
    return membership, message


def message_update_event(message: Message) -> events.Event:
    """`message_updated {message}` to the members (contract 15), with the message's read status."""
    data = messages_data([message], selectors.read_horizon(message.conversation_id), reactions={})[0]
    return events.Event(
        selectors.member_ids(message.conversation_id), "message_updated", {"message": data}, message_id=message.pk
    )


@transaction.atomic
def message_edit(
    *,
    user: User,
    conversation_id: int,
    message_id: int | None,
    content: str | None = None,
    caption: str | None = None,
    mentions: list | None = None,
) -> Message:
    """Edits a message's text (content) or a media message's caption (contract 15): by its
    sender, within MESSAGE_EDIT_WINDOW_SECONDS and MAX_EDITS times; the previous words are kept
    as a MessageEdit. `mentions` (contract 18), checked as on send, replace the message's; None
    keeps them. Members get message_updated."""
    _, message = _locked_message(user=user, conversation_id=conversation_id, message_id=message_id)
    if message.sender_id != user.pk:
        raise PermissionDenied("Only the sender can edit a message")
    if message.status == Message.Status.REMOVED:
        raise Conflict("The message was removed")
    now = timezone.now()
    if now - message.created_at > timedelta(seconds=settings.MESSAGE_EDIT_WINDOW_SECONDS):
        raise PermissionDenied("The time to edit this message has passed")
    if MessageEdit.objects.filter(message=message).count() >= MAX_EDITS:
        raise PermissionDenied(f"A message can be edited at most {MAX_EDITS} times")
    if message.type == Message.Type.TEXT and content is None:
        raise ValidationError({"content": ["A text message is edited by its content."]})
    if message.type != Message.Type.TEXT and (content is not None or message.type == Message.Type.CALL):
        raise ValidationError({"caption": ["Only the caption of a media message can be edited."]})
    if mentions is not None:
        message.mentions, message.mentions_all = mentions_validated(
            conversation_id=conversation_id, sender=user, raw=mentions
        )
        Mention.objects.filter(message=message).delete()
        Mention.objects.bulk_create([Mention(message=message, user_id=user_id) for user_id in message.mentions])
    MessageEdit.objects.create(message=message, content=message.content, caption=message.caption, editor=user)
    if content is not None:
        message.content = content
    else:
        message.caption = caption
    message.edited_at = message.updated_at = now
    message.save(update_fields=["content", "caption", "mentions", "mentions_all", "edited_at", "updated_at"])
    search.message_index_update(message)
    events.record(message_update_event(message))
    return message


def _recalled_by(*, user: User, membership: Membership, message: Message) -> str:
    """Who recalls the message ("sender" or "admin"), or 403: its sender within
    MESSAGE_RECALL_WINDOW_SECONDS; in a group, the owner anyone's and an admin a plain member's
    (or a former member's), at any time."""
    window = timedelta(seconds=settings.MESSAGE_RECALL_WINDOW_SECONDS)
    if message.sender_id == user.pk and timezone.now() - message.created_at <= window:
        return Message.RemovedBy.SENDER
    if membership.role == Membership.Role.OWNER:
        return Message.RemovedBy.ADMIN
    if membership.role == Membership.Role.ADMIN and message.sender_id != user.pk:
        sender_role = (
            Membership.objects.filter(conversation_id=message.conversation_id, user_id=message.sender_id)
            .values_list("role", flat=True)
            .first()
        )
        if sender_role in (None, Membership.Role.MEMBER):
            return Message.RemovedBy.ADMIN
    raise PermissionDenied("You cannot recall this message")


@transaction.atomic
def message_recall(*, user: User, conversation_id: int, message_id: int | None) -> Message:
    """Recalls a message for everyone (contract 15): message_remove, when _recalled_by allows
    it; 409 when it already was removed (also by a recall that won a race)."""
    membership, message = _locked_message(user=user, conversation_id=conversation_id, message_id=message_id)
    removed_by = _recalled_by(user=user, membership=membership, message=message)
    if not message_remove(message=message, removed_by=removed_by):
        raise Conflict("The message was already removed")
    return message


@transaction.atomic
def message_remove(*, message: Message, removed_by: str = Message.RemovedBy.MODERATOR) -> bool:
    """Removes a message for everyone: a moderator's removal (contract 10) and a recall (15).

    It stays in history as `removed` (with removed_by) with no content, caption, media,
    mentions or reactions, and removal is complete: the search index drops it, the stored events that carried it are
    rewritten to the tombstone (replays and pushes not yet sent never show it again), an upload
    no other message uses is deleted, and every member gets message_status "removed" (which
    push turns into a silent push that retracts the notification).

    Returns False, changing nothing, when it already was removed. The conversation row lock
    serializes this with sends and membership changes, so the members told are the members.
    """
    Conversation.objects.select_for_update().filter(pk=message.conversation_id).first()
    message.refresh_from_db(fields=["status"])
    if message.status == Message.Status.REMOVED:
        return False
    upload_id = message.media_id
    message.status = Message.Status.REMOVED
    message.removed_by = removed_by
    message.content = ""
    message.caption = ""
    message.media = None
    # Who it mentioned was part of what it said: the tombstone names nobody, and the mentions
    # and the reactions go with it (mention_count and the badge no longer count it).
    message.mentions = []
    message.mentions_all = False
    message.reaction_count = 0
    message.updated_at = timezone.now()
    message.save(
        update_fields=[
            "status", "removed_by", "content", "caption", "media", "mentions", "mentions_all", "reaction_count",
            "updated_at",
        ]
    )  # fmt: skip
    Mention.objects.filter(message=message).delete()
    Reaction.objects.filter(message=message).delete()
    search.message_index_remove(message)
    tombstone = message_data(message)
    message_events_rewrite(message_ids=[message.pk], rewrite=lambda type, data: _tombstone_of(data, tombstone))
    # Replies quoted it in the frames that carried them: they now show it removed.
    replies = list(Message.objects.filter(reply_to_id=message.pk).values_list("pk", flat=True))
    if replies:
        preview = reply_to_data(message)
        message_events_rewrite(message_ids=replies, rewrite=lambda type, data: _with_reply_to(data, preview))
    if upload_id is not None:
        # What is removed is not kept anywhere (after the conversation lock: the order sends
        # take them in).
        media_discard_if_unused(upload_id, in_use=selectors.media_in_use)
    data = message_status_data(
        message_id=message.pk,
        conversation_id=message.conversation_id,
        status=Message.Status.REMOVED,
        updated_at=message.updated_at,
        removed_by=removed_by,
    )
    events.record(events.Event(selectors.member_ids(message.conversation_id), "message_status", data))
    return True


def _with_reply_to(data: dict, preview: dict) -> dict:
    """A stored frame of a reply, its quote of the original replaced (message_updated nests it)."""
    if "message" in data:
        return {**data, "message": {**data["message"], "reply_to": preview}}
    return {**data, "reply_to": preview}


def _tombstone_of(data: dict, tombstone: dict) -> dict:
    """A stored frame that carried a removed message, rewritten: message_updated's `message`, or
    new_message's data (the sender's own variant keeps its temp_id)."""
    if "message" in data:
        return {**data, "message": tombstone}
    return {**tombstone, **({"temp_id": data["temp_id"]} if "temp_id" in data else {})}


@transaction.atomic
def message_hide(*, user: User, conversation_id: int, message_id: int | None) -> None:
    """Deletes a message for the caller only (contract 15): it leaves their history, list,
    unread counts and search on every device (messages_hidden to their own connections)."""
    membership = selectors.membership_for(user=user, conversation_id=conversation_id)
    seq = Message.objects.filter(pk=message_id, conversation_id=conversation_id).values_list("seq", flat=True).first()
    if seq is None:
        raise NotFound("Message not found")
    if seq <= membership.cleared_seq:
        return  # cleared already
    _, created = MessageHidden.objects.get_or_create(user=user, message_id=message_id)
    if not created:
        return  # hidden already
    if not membership.hides_messages:
        Membership.objects.filter(pk=membership.pk).update(hides_messages=True)
    data = {"conversation_id": format_id("c", conversation_id), "message_ids": [format_id("m", message_id)]}
    events.record(events.Event([user.pk], "messages_hidden", data))


@transaction.atomic
def conversation_clear(*, user: User, conversation_id: int) -> None:
    """Hides every message of the conversation up to now for the caller (contract 15):
    Membership.cleared_seq moves to the newest message, and their own connections get
    conversation_cleared with its id. Nothing new to hide: no event."""
    membership = Membership.objects.select_for_update().filter(conversation_id=conversation_id, user=user).first()
    if membership is None:
        raise NotFound("Conversation not found")
    last_seq = Conversation.objects.filter(pk=conversation_id).values_list("last_seq", flat=True).get()
    if last_seq <= membership.cleared_seq:
        return
    membership.cleared_seq = last_seq
    membership.save(update_fields=["cleared_seq"])
    # Per-message hides of what is now cleared say nothing more.
    MessageHidden.objects.filter(
        user=user, message__conversation_id=conversation_id, message__seq__lte=last_seq
    ).delete()
    data = {
        "conversation_id": format_id("c", conversation_id),
        "cleared_before_message_id": format_id("m", selectors.message_id_at(conversation_id, last_seq)),
    }
    events.record(events.Event([user.pk], "conversation_cleared", data))


MAX_PINNED = 20  # pinned conversations a user may have (contract 17)


@transaction.atomic
def conversation_settings_update(*, user: User, conversation_id: int, **changes: object) -> Membership:
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
    """An erased account's remaining (private) memberships, its hidden messages, its reactions
    (the members are told, chat.reactions.reactions_erase) and the rows that counted its
    mentions go; the other participant keeps the history, with "Deleted user"
    (privacy.services.user_delete, after it left its groups)."""
    reactions.reactions_erase(user)
    Mention.objects.filter(user=user).delete()
    memberships = Membership.objects.filter(user=user)
    events.invalidate_on_commit(MEMBERS, memberships.values_list("conversation_id", flat=True))
    memberships.delete()
    MessageHidden.objects.filter(user=user).delete()
