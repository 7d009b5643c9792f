"""Reads scoped to the caller: a conversation that is not the caller's does not exist (404)."""

from django.db import connection
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Value, Window
from django.db.models.functions import Coalesce, RowNumber
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from chat.models import Conversation, Membership, Message
from contacts.models import Contact
from media.models import Media


def membership_for(*, user, conversation_id):
    """The caller's membership of a conversation, or 404 for "missing or not yours"."""
    membership = Membership.objects.filter(conversation_id=conversation_id, user=user).first()
    if membership is None:
        raise NotFound("Conversation not found")
    return membership


def _unread_count(reader):
    """The unread count of a membership row: messages from others after its read pointer."""
    return Coalesce(
        Subquery(
            Message.objects.filter(conversation=OuterRef("conversation"), seq__gt=OuterRef("last_read_seq"))
            .exclude(sender=reader)
            .exclude(status=Message.Status.REMOVED)
            .order_by()
            .values("conversation")
            .annotate(n=Count("pk"))
            .values("n")
        ),
        Value(0),
    )


def unread_summaries(user_ids) -> dict[int, dict]:
    """{user id: {badge, unread_conversations, unread_messages, mentions}} for these users, in one query.

    The one definition of the badge (contract 12, 13): conversations with unread messages. Only
    memberships behind the conversation's newest message are counted at all.
    """
    rows = (
        Membership.objects.filter(user_id__in=user_ids, last_read_seq__lt=F("conversation__last_seq"))
        .annotate(unread=_unread_count(OuterRef("user")))
        .filter(unread__gt=0)
        .values("user_id")
        .annotate(conversations=Count("pk"), messages=Sum("unread"))
    )
    empty = {"badge": 0, "unread_conversations": 0, "unread_messages": 0, "mentions": 0}
    summaries = {user_id: dict(empty) for user_id in user_ids}
    for row in rows:
        summaries[row["user_id"]].update(
            badge=row["conversations"], unread_conversations=row["conversations"], unread_messages=row["messages"]
        )
    return summaries


def unread_count(membership) -> int:
    """The unread count of one membership (messages from others after its read pointer)."""
    return (
        Message.objects.filter(conversation_id=membership.conversation_id, seq__gt=membership.last_read_seq)
        .exclude(sender_id=membership.user_id)
        .exclude(status=Message.Status.REMOVED)
        .count()
    )


def _list_rows(user):
    remark = Contact.objects.filter(owner=user, user=OuterRef("peer")).values("remark")[:1]
    return (
        Membership.objects.filter(user=user)
        .select_related("conversation__last_message__sender", "conversation__group", "peer")
        # Only what a list item shows (chat.serializers.conversation_data): two users and a
        # message a row, whole, were most of a page's cost.
        .only(
            "conversation__type",
            "conversation__created_at",
            "conversation__last_activity_at",
            "conversation__last_message__sender__username",
            "conversation__last_message__sender__nickname",
            "conversation__last_message__content",
            "conversation__last_message__type",
            "conversation__last_message__status",
            "conversation__last_message__created_at",
            "conversation__group__name",
            "conversation__group__avatar",
            "peer__username",
            "peer__nickname",
            "peer__avatar",
        )
        .annotate(unread_count=_unread_count(user), remark=Subquery(remark))
    )


def conversation_list(*, user, type=None, limit, offset):
    """(total, memberships) for the caller's conversation list, newest activity first.

    One query: last message, target (peer or group), contact remark and unread count are
    joined or sub-selected, and the total comes from a window over the same rows.
    """
    rows = _list_rows(user)
    if type in (Conversation.Type.PRIVATE, Conversation.Type.GROUP):
        rows = rows.filter(conversation__type=type)
    page = list(
        rows.annotate(total=Window(Count("pk"))).order_by("-conversation__last_activity_at", "-conversation_id")[
            offset : offset + limit
        ]
    )
    total = page[0].total if page else (rows.count() if offset else 0)
    return total, page


def conversation_item(*, user, conversation_id):
    """One row of the conversation list (same shape), or 404."""
    membership = _list_rows(user).filter(conversation_id=conversation_id).first()
    if membership is None:
        raise NotFound("Conversation not found")
    return membership


# History pages, the most frequent read, in plain SQL as the send path (the ORM's query building
# cost more than the database work). The anchors are subqueries: NULL, so no rows, for an id
# that is not a message of this conversation.
_PAGE = """
SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.type, m.content, m.caption, m.media_id, m.temp_id,
       m.call, m.status, m.created_at, m.updated_at, u.username AS sender_username, u.nickname AS sender_nickname
FROM chat_message m JOIN accounts_user u ON u.id = m.sender_id
WHERE m.conversation_id = %(conversation)s {bounds}
ORDER BY m.seq {direction}
LIMIT %(rows)s
"""
_ANCHOR = "(SELECT seq FROM chat_message WHERE id = %({name})s AND conversation_id = %(conversation)s)"


def message_page(*, conversation_id, limit, before=None, after=None):
    """(messages newest first, has_more) around the messages with ids `before` / `after`.

    `after` pages toward newer messages: the `limit` messages just newer than it (still listed
    newest first); `has_more` says whether more exist beyond the page in its paging direction.
    Only an empty page costs a look at whether the anchors were messages of this conversation
    at all (400 if not). Each sender is made once, not once per message.
    """
    bounds = ""
    if before is not None:
        bounds += " AND m.seq < " + _ANCHOR.format(name="before")
    if after is not None:
        bounds += " AND m.seq > " + _ANCHOR.format(name="after")
    sql = _PAGE.format(bounds=bounds, direction="ASC" if after is not None else "DESC")
    params = {"conversation": conversation_id, "before": before, "after": after, "rows": limit + 1}
    rows = list(Message.objects.raw(sql, params))
    if not rows:
        for param, message_id in (("before", before), ("after", after)):
            if (
                message_id is not None
                and not Message.objects.filter(pk=message_id, conversation_id=conversation_id).exists()
            ):
                raise ValidationError({param: ["Not a message of this conversation."]})
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is not None:
        rows.reverse()
    senders = {}
    for message in rows:
        sender = senders.get(message.sender_id)
        if sender is None:
            sender = senders[message.sender_id] = User(
                pk=message.sender_id, username=message.sender_username, nickname=message.sender_nickname
            )
        message.sender = sender
    media_ids = {message.media_id for message in rows if message.media_id is not None}
    if media_ids:
        uploads = Media.objects.in_bulk(media_ids)
        for message in rows:
            if message.media_id is not None:
                message.media = uploads[message.media_id]
    return rows, has_more


def _two_lowest_read_pointers(conversation_id):
    """Whether every member but a message's sender has read it depends on these alone: the
    lowest read pointer, unless it is the sender's own, then the second lowest."""
    return list(
        Membership.objects.filter(conversation_id=conversation_id)
        .order_by("last_read_seq", "user_id")
        .values_list("user_id", "last_read_seq")[:2]
    )


def read_horizon(conversation_id):
    """A function seq, sender -> whether every member but the sender has read up to seq."""
    return _is_read(_two_lowest_read_pointers(conversation_id))


_MEMBER_AND_READERS = """
SELECT EXISTS (SELECT 1 FROM chat_membership WHERE conversation_id = %(conversation)s AND user_id = %(user)s),
       user_id, last_read_seq
FROM chat_membership WHERE conversation_id = %(conversation)s
ORDER BY last_read_seq, user_id
LIMIT 2
"""


def member_read_horizon(*, user, conversation_id):
    """membership_for's check and read_horizon in one round trip, for history pages: 404 unless
    the caller is a member, else read_horizon's function."""
    with connection.cursor() as cursor:
        cursor.execute(_MEMBER_AND_READERS, {"conversation": conversation_id, "user": user.pk})
        rows = cursor.fetchall()
    if not rows or not rows[0][0]:
        raise NotFound("Conversation not found")
    return _is_read([(user_id, seq) for _, user_id, seq in rows])


def _is_read(lowest):
    def is_read(seq, sender_id):
        others = [pointer for user_id, pointer in lowest if user_id != sender_id]
        return bool(others) and others[0] >= seq

    return is_read


def messages_read_by_all(*, conversation_id, reader_id, after, upto, per_sender):
    """The messages of others in seqs (after, upto] that every member but their sender has
    read, at most the newest `per_sender` of each sender, newest first: (id, sender_id).
    Bounded in the database however long the backlog a read covers."""
    lowest = _two_lowest_read_pointers(conversation_id)
    if len(lowest) < 2:
        return []
    (lowest_user, lowest_seq), (_, second_seq) = lowest
    read_by_all = Q(seq__lte=lowest_seq) | Q(sender_id=lowest_user, seq__lte=second_seq)
    newest_of_sender = Window(RowNumber(), partition_by=[F("sender_id")], order_by=F("seq").desc())
    return list(
        Message.objects.filter(read_by_all, conversation_id=conversation_id, seq__gt=after, seq__lte=upto)
        .exclude(sender_id=reader_id)
        .exclude(status=Message.Status.REMOVED)
        .annotate(rank=newest_of_sender)
        .filter(rank__lte=per_sender)
        .order_by("-seq")
        .values_list("pk", "sender_id")
    )


def member_ids(conversation_id):
    """The audience of every message: plain SQL, as it runs on every send."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id FROM chat_membership WHERE conversation_id = %s", [conversation_id])
        return [user_id for (user_id,) in cursor.fetchall()]


def message_id_at(conversation_id, seq):
    return Message.objects.filter(conversation_id=conversation_id, seq=seq).values_list("pk", flat=True).first()
