"""Reads scoped to the caller: a conversation that is not the caller's does not exist (404)."""

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, F, IntegerField, Q, Sum, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from chat.models import Conversation, Membership, Mention, Message, MessageEdit, Reaction
from chat.serializers import REPLY_PREVIEW_CHARS
from imserver.api import format_id
from imserver.rows import stored
from media.models import Media


def membership_for(*, user: User, conversation_id: int | None) -> Membership:
    """The caller's membership of a conversation, or 404 for "missing or not yours"."""
    membership = Membership.objects.filter(conversation_id=conversation_id, user=user).first()
    if membership is None:
        raise NotFound("Conversation not found")
    return membership


def muted_now() -> Q:
    """A filter for Membership querysets: the memberships muted at this moment (their mute has no
    end, or ends later). The one definition of "muted now", for the list, badges and pushes: an
    elapsed mute is over without any write."""
    return Q(muted=True) & (Q(muted_until__isnull=True) | Q(muted_until__gt=timezone.now()))


def hidden_now() -> Q:
    """A filter for Membership querysets: hidden, and no new message since (contract 17)."""
    return Q(hidden_seq__isnull=False, hidden_seq__gte=F("conversation__last_seq"))


_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}[connection.vendor]
# The one definition of a membership's unread and mention counts (contracts 13, 15, 16), as SQL
# over a membership row ({mb}: its table or alias), for the conversation list's query (_LIST),
# the ORM's (RawSQL: /unread, badges) and conversation_read's (_COUNTS) alike. Unread: messages from
# others after the read pointer and the clear, not removed, not hidden by the member. Mentions:
# those of them that mention the member by id or `@all`, not from a user the member blocks.
_UNREAD_FROM = f"""FROM chat_message x
        WHERE x.conversation_id = {{mb}}.conversation_id
          AND x.seq > {_GREATEST}({{mb}}.last_read_seq, {{mb}}.cleared_seq)
          AND x.sender_id <> {{mb}}.user_id AND x.status <> 'removed'
          AND NOT EXISTS (
              SELECT 1 FROM chat_messagehidden h WHERE h.user_id = {{mb}}.user_id AND h.message_id = x.id)"""
_UNREAD_COUNT = f"(SELECT COUNT(*) {_UNREAD_FROM})"
# PostgreSQL may plan an EXISTS under OR as a hash of its whole subquery: here all the member's
# mentions, hashed again for every membership a query counts (the conversation list of a user
# mentioned 700 times took 0.4 ms a row for it). OFFSET 0 keeps it a probe of the unread
# message's (message, user) index entry.
_PROBE_ONLY = {"postgresql": " OFFSET 0", "sqlite": ""}[connection.vendor]
_MENTION_COUNT = f"""(SELECT COUNT(*) {_UNREAD_FROM}
          AND (x.mentions_all OR EXISTS (
              SELECT 1 FROM chat_mention mn WHERE mn.message_id = x.id AND mn.user_id = {{mb}}.user_id{_PROBE_ONLY}))
          AND NOT EXISTS (
              SELECT 1 FROM contacts_block b WHERE b.owner_id = {{mb}}.user_id AND b.user_id = x.sender_id))"""
_MEMBERSHIP_TABLE = Membership._meta.db_table


def _counts_orm() -> dict[str, RawSQL]:
    """The counts as annotations of a Membership queryset (whose table the ORM leaves unaliased)."""
    return {
        "unread": RawSQL(_UNREAD_COUNT.format(mb=_MEMBERSHIP_TABLE), [], output_field=IntegerField()),
        "mentioned": RawSQL(_MENTION_COUNT.format(mb=_MEMBERSHIP_TABLE), [], output_field=IntegerField()),
    }


def unread_summaries(user_ids: Iterable[int]) -> dict[int, dict]:
    """{user id: {badge, unread_conversations, unread_messages, mentions}} for these users, in one query.

    The one definition of the badge (contract 12, 13): conversations with unread messages that are
    not muted now. Only
    memberships behind the conversation's newest message are counted at all.
    """
    rows = (
        Membership.objects.filter(user_id__in=user_ids, last_read_seq__lt=F("conversation__last_seq"))
        .annotate(**_counts_orm())
        .filter(unread__gt=0)
        .values("user_id")
        .annotate(
            conversations=Count("pk"),
            messages=Sum("unread"),
            mentions=Sum("mentioned"),
            badge=Count("pk", filter=~muted_now()),
        )
    )
    empty = {"badge": 0, "unread_conversations": 0, "unread_messages": 0, "mentions": 0}
    summaries = {user_id: dict(empty) for user_id in user_ids}
    for row in rows:
        summaries[row["user_id"]].update(
            badge=row["badge"],
            unread_conversations=row["conversations"],
            unread_messages=row["messages"],
            mentions=row["mentions"],
        )
    return summaries


_COUNTS = f"SELECT {_UNREAD_COUNT}, {_MENTION_COUNT} FROM chat_membership mb WHERE mb.id = %s".format(mb="mb")


def membership_counts(membership: Membership) -> tuple[int, int]:
    """(unread count, mention count) of one membership (_UNREAD_COUNT, _MENTION_COUNT): one
    statement, as every read asks for both."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS, [membership.pk])
        return cursor.fetchone()


# The conversation list, the second most frequent read, in plain SQL as history pages are (the
# ORM built its query, with four correlated subqueries, in more time than PostgreSQL ran it).
# One row a membership: its conversation, the conversation's last message with its sender, the
# group or the peer, the caller's remark for the peer; the counts only for a conversation with
# something after the member's pointers (a CASE skips them for the rest, most of a list),
# _UNREAD_COUNT and _MENTION_COUNT; the id of the newest message the member
# still sees (_with_shown_last_messages); the total as a window over the same rows.
_GROUP_TABLE = Conversation._meta.get_field("group").related_model._meta.db_table
_HIDDEN = "EXISTS (SELECT 1 FROM chat_messagehidden h WHERE h.user_id = %(user)s AND h.message_id = {m}.id)"
_LIST = f"""
SELECT mb.id, mb.conversation_id, mb.user_id, mb.peer_id, mb.muted_until, mb.notify, mb.pinned_at,
       c.type AS c_type, c.created_at AS c_created_at, c.last_activity_at AS c_last_activity_at,
       c.last_message_id AS c_last_message_id,
       lm.sender_id AS lm_sender_id, lm.content AS lm_content, lm.type AS lm_type, lm.status AS lm_status,
       lm.created_at AS lm_created_at, lu.username AS lm_sender_username, lu.nickname AS lm_sender_nickname,
       g.id AS g_id, g.name AS g_name, g.avatar AS g_avatar,
       p.username AS peer_username, p.nickname AS peer_nickname, p.avatar AS peer_avatar,
       (SELECT remark FROM contacts_contact WHERE owner_id = %(user)s AND user_id = mb.peer_id) AS remark,
       CASE WHEN {_GREATEST}(mb.last_read_seq, mb.cleared_seq) >= c.last_seq THEN 0
            ELSE {_UNREAD_COUNT.format(mb="mb")} END AS unread_count,
       CASE WHEN {_GREATEST}(mb.last_read_seq, mb.cleared_seq) >= c.last_seq THEN 0
            ELSE {_MENTION_COUNT.format(mb="mb")} END AS mention_count,
       (mb.muted AND (mb.muted_until IS NULL OR mb.muted_until > %(now)s)) AS is_muted,
       (mb.hidden_seq IS NOT NULL AND mb.hidden_seq >= c.last_seq) AS is_hidden,
       (SELECT s.id FROM chat_message s
        WHERE s.conversation_id = mb.conversation_id AND s.seq > mb.cleared_seq AND NOT {_HIDDEN.format(m="s")}
        ORDER BY s.seq DESC LIMIT 1) AS shown_last_id,
       COUNT(*) OVER () AS total
FROM chat_membership mb
JOIN chat_conversation c ON c.id = mb.conversation_id
LEFT JOIN chat_message lm ON lm.id = c.last_message_id
LEFT JOIN accounts_user lu ON lu.id = lm.sender_id
LEFT JOIN {_GROUP_TABLE} g ON g.conversation_id = c.id
LEFT JOIN accounts_user p ON p.id = mb.peer_id
WHERE mb.user_id = %(user)s {{filters}}
ORDER BY mb.pinned_at DESC NULLS LAST, c.last_activity_at DESC, mb.conversation_id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
_VISIBLE = " AND NOT (mb.hidden_seq IS NOT NULL AND mb.hidden_seq >= c.last_seq)"


def _datetime(value):
    """A timestamp column that is not a model field of the raw query's model: SQLite gives text."""
    if isinstance(value, str):
        return parse_datetime(value).replace(tzinfo=UTC)
    return value


def _list_rows(user: User, *, filters: str = "", limit: int = 1, offset: int = 0, **params) -> list[Membership]:
    """Rows of _LIST as memberships carrying what conversation_data shows: the conversation with
    its last message (and sender) and group, the peer, the counts, settings and the total."""
    params.update(
        user=user.pk, now=connection.ops.adapt_datetimefield_value(timezone.now()), limit=limit, offset=offset
    )
    rows = list(Membership.objects.raw(_LIST.format(filters=filters), params))
    group_model = Conversation._meta.get_field("group").related_model
    for row in rows:
        conversation = stored(
            Conversation,
            id=row.conversation_id,
            type=row.c_type,
            created_at=_datetime(row.c_created_at),
            last_activity_at=_datetime(row.c_last_activity_at),
            last_message_id=row.c_last_message_id,
        )
        if row.c_last_message_id is not None:
            conversation.last_message = last = stored(
                Message,
                id=row.c_last_message_id,
                conversation_id=row.conversation_id,
                sender_id=row.lm_sender_id,
                content=row.lm_content,
                type=row.lm_type,
                status=row.lm_status,
                created_at=_datetime(row.lm_created_at),
            )
            last.sender = stored(
                User, id=row.lm_sender_id, username=row.lm_sender_username, nickname=row.lm_sender_nickname
            )
        if row.g_id is not None:
            conversation.group = stored(
                group_model, id=row.g_id, conversation_id=row.conversation_id, name=row.g_name, avatar=row.g_avatar
            )
        row.conversation = conversation
        if row.peer_id is not None:
            row.peer = stored(
                User, id=row.peer_id, username=row.peer_username, nickname=row.peer_nickname, avatar=row.peer_avatar
            )
        row.is_muted, row.is_hidden = bool(row.is_muted), bool(row.is_hidden)
    return rows


def _with_shown_last_messages(rows):
    """Gives each row its `shown_last_message`: the conversation's last message, unless the
    member hid or cleared it (contract 15), then their newest visible one (None: nothing left),
    fetched for all such rows in one query."""
    others = {row.shown_last_id for row in rows if row.shown_last_id != row.conversation.last_message_id}
    others.discard(None)
    fetched = Message.objects.select_related("sender").in_bulk(others) if others else {}
    for row in rows:
        if row.shown_last_id == row.conversation.last_message_id:
            row.shown_last_message = row.conversation.last_message
        else:
            row.shown_last_message = fetched.get(row.shown_last_id)
    return rows


def conversation_list(
    *, user: User, type: str | None = None, include_hidden: bool = False, limit: int, offset: int
) -> tuple[int, list[Membership]]:
    """(total, memberships) for the caller's conversation list: pinned ones first, most recently
    pinned first, then newest activity first; hidden ones only with include_hidden.

    One query (_LIST): last message, target (peer or group), contact remark, unread and mention
    counts and settings are joined or sub-selected, and the total comes from a window over the
    same rows. The order is total (the conversation id breaks ties), so offset paging has no
    gaps. Only a page past the end, which has no row to carry the total, costs a count.
    """
    filters, params = "", {}
    if type in (Conversation.Type.PRIVATE, Conversation.Type.GROUP):
        filters, params["type"] = " AND c.type = %(type)s", type
    if not include_hidden:
        filters += _VISIBLE
    rows = _list_rows(user, filters=filters, limit=limit, offset=offset, **params)
    if rows:
        return rows[0].total, _with_shown_last_messages(rows)
    if not offset:
        return 0, rows
    total = Membership.objects.filter(user=user)
    if type in (Conversation.Type.PRIVATE, Conversation.Type.GROUP):
        total = total.filter(conversation__type=type)
    if not include_hidden:
        total = total.exclude(hidden_now())
    return total.count(), rows


def conversation_item(*, user: User, conversation_id: int | None) -> Membership:
    """One row of the conversation list (same shape), or 404."""
    rows = _list_rows(user, filters=" AND mb.conversation_id = %(conversation)s", conversation=conversation_id)
    if not rows:
        raise NotFound("Conversation not found")
    return _with_shown_last_messages(rows)[0]


# History pages, the most frequent read, in plain SQL as the send path (the ORM's query building
# cost more than the database work), its bounds found first by history_window.
# MESSAGE_COLUMNS and MESSAGE_JOINS are what message_rows needs of each row: the
# message, its sender's names, the original it replies to with that one's sender (contract 18:
# the preview is rendered from the original when read) and the reactions as the viewer (the
# %(viewer)s parameter) sees them. Search's query uses them too.
# The viewer's reactions ride in the same row, as a JSON array of [emoji, count, reacted] in the
# order each emoji was first used: a correlated subquery on chat_reaction's unique index, which
# costs the page less than a query of its own would (docs/performance.md).
_VIEWER_REACTIONS = {
    "postgresql": """(SELECT json_agg(json_build_array(x.emoji, x.n, x.reacted) ORDER BY x.first)
        FROM (SELECT emoji, COUNT(*) AS n, bool_or(user_id = %(viewer)s) AS reacted, MIN(id) AS first
              FROM chat_reaction WHERE message_id = m.id GROUP BY emoji) x)""",
    "sqlite": """(SELECT json_group_array(json_array(x.emoji, x.n, x.reacted))
        FROM (SELECT emoji, COUNT(*) AS n, MAX(user_id = %(viewer)s) AS reacted
              FROM chat_reaction WHERE message_id = m.id GROUP BY emoji ORDER BY MIN(id)) x)""",
}[connection.vendor]
# The original a reply answers, with its sender, as one JSON array [seq, sender_id, type, text
# (what its preview needs of it), status, sender's username, nickname]: a subquery, which
# PostgreSQL plans in half the time of two more joins in the page's query (0.36 against 0.75 ms
# a page, docs/performance.md).
_REPLY_TO = (
    {
        "postgresql": "json_build_array",
        "sqlite": "json_array",
    }[connection.vendor]
    + f"""(r.seq, r.sender_id, r.type, substr(r.content, 1, {REPLY_PREVIEW_CHARS}), r.status,
                     ru.username, ru.nickname)"""
)
MESSAGE_COLUMNS = (
    """
       m.id, m.conversation_id, m.seq, m.sender_id, m.type, m.content, m.caption, m.media_id, m.temp_id,
       m.call, m.status, m.created_at, m.updated_at, m.edited_at, m.removed_by,
       m.reply_to_id, m.mentions, m.mentions_all,
       m.forwarded_sender_name, m.forwarded_created_at,
       u.username AS sender_username, u.nickname AS sender_nickname,
       (SELECT """
    + _REPLY_TO
    + """ FROM chat_message r JOIN accounts_user ru ON ru.id = r.sender_id
        WHERE r.id = m.reply_to_id) AS reply_row,
       """
    + "CASE WHEN m.reaction_count > 0 THEN "  # most messages have none: no look at chat_reaction
    + _VIEWER_REACTIONS
    + """ END AS viewer_reactions
"""
)
MESSAGE_JOINS = """
JOIN accounts_user u ON u.id = m.sender_id
"""
_PAGE = (
    "SELECT"
    + MESSAGE_COLUMNS
    + "FROM chat_message m"
    + MESSAGE_JOINS
    + """WHERE m.conversation_id = %(conversation)s {bounds}
ORDER BY m.seq {direction}
LIMIT %(rows)s
"""
)


@dataclass(frozen=True)
class HistoryWindow:
    """What a history page of one member is cut from (history_window): the messages' status
    function and the page's bounds as seqs, known before the page is read."""

    conversation_id: int
    viewer_id: int
    status_of: Callable[[int, int], str]
    cleared_seq: int  # the member's clear (contract 15): nothing up to it is shown
    hides_messages: bool  # Membership.hides_messages: the page leaves out the member's hidden ones
    before_seq: int | None  # the `before` anchor's seq, None without one
    after_seq: int | None


# The caller's clear and hides_messages (NULL: not a member), the anchors' seqs (NULL: not messages of this
# conversation) and the two lowest read and delivered pointers (read_horizon), in one round trip.
_WINDOW = """
SELECT mb.cleared_seq, mb.hides_messages,
       (SELECT seq FROM chat_message WHERE id = %(before)s AND conversation_id = %(conversation)s) AS before_seq,
       (SELECT seq FROM chat_message WHERE id = %(after)s AND conversation_id = %(conversation)s) AS after_seq,
       pointers.kind, pointers.user_id, pointers.seq
FROM (SELECT * FROM (SELECT 'r' AS kind, user_id, receipt_seq AS seq FROM chat_membership
                     WHERE conversation_id = %(conversation)s ORDER BY receipt_seq, user_id LIMIT 2) AS r
      UNION ALL
      SELECT * FROM (SELECT 'd' AS kind, user_id, delivered_seq AS seq FROM chat_membership
                     WHERE conversation_id = %(conversation)s ORDER BY delivered_seq, user_id LIMIT 2) AS d
     ) AS pointers
LEFT JOIN chat_membership mb ON mb.conversation_id = %(conversation)s AND mb.user_id = %(user)s
ORDER BY pointers.kind DESC, pointers.seq, pointers.user_id
"""


def history_window(
    *, user: User, conversation_id: int | None, before: int | None = None, after: int | None = None
) -> HistoryWindow:
    """The caller's history window around the messages with ids `before` / `after`, in one
    round trip: 404 unless the caller is a member, 400 for an anchor that is not a message of
    this conversation. The page (message_page) then has its bounds as numbers, which the
    planner estimates from its statistics (bounds from subqueries it guessed at 25 rows, and
    sorted every message of a deep page's range instead of reading 50 down the index)."""
    params = {"conversation": conversation_id, "user": user.pk, "before": before, "after": after}
    with connection.cursor() as cursor:
        cursor.execute(_WINDOW, params)
        rows = cursor.fetchall()
    if not rows or rows[0][0] is None:
        raise NotFound("Conversation not found")
    cleared_seq, hides_messages, before_seq, after_seq = rows[0][:4]
    for param, message_id, seq in (("before", before, before_seq), ("after", after, after_seq)):
        if message_id is not None and seq is None:
            raise ValidationError({param: ["Not a message of this conversation."]})
    pointers = {"r": [], "d": []}
    for *_, kind, user_id, seq in rows:
        pointers[kind].append((user_id, seq))
    return HistoryWindow(
        conversation_id=conversation_id,
        viewer_id=user.pk,
        status_of=_status_of(pointers["r"], pointers["d"]),
        cleared_seq=cleared_seq,
        hides_messages=bool(hides_messages),
        before_seq=before_seq,
        after_seq=after_seq,
    )


class MessageRow:
    """A message read in plain SQL (MESSAGE_COLUMNS, message_rows): the attributes of Message
    that chat.serializers.message_data reads, with its sender, the original it replies to (a
    MessageRow too) and its upload, and no model instance. RawQuerySet's rows made into
    Message instances cost a page of 50 more than its query (about 1.6 ms of process CPU
    against 1.0 ms for reading the rows, docs/performance.md)."""

    media = None
    reply_to = None

    @property
    def pk(self) -> int:
        return self.id


def _json(text):
    return [] if text == "[]" else json.loads(text)  # most messages mention no one


# What message_rows converts, by column; the rest come as they are. jsonb comes as text on
# PostgreSQL too (Django's loader for its JSONField), json decoded.
_CONVERTED = {"mentions": _json, "call": _json}
if connection.vendor == "sqlite":  # timestamps, booleans and all JSON as text and numbers
    _CONVERTED.update(
        dict.fromkeys(("created_at", "updated_at", "edited_at", "forwarded_created_at"), _datetime),
        mentions_all=bool,
        reply_row=json.loads,
        viewer_reactions=json.loads,
    )


def message_rows(sql: str, params: dict) -> list[MessageRow]:
    """The rows of a query that selects MESSAGE_COLUMNS (and MESSAGE_JOINS), as MessageRows
    with their senders, originals and uploads (_attach_senders_and_media); other columns
    become attributes of the same names."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        found = cursor.fetchall()
    converted = [(index, _CONVERTED[name]) for index, name in enumerate(names) if name in _CONVERTED]
    rows = []
    for values in found:
        values = list(values)
        for index, convert in converted:
            if values[index] is not None:
                values[index] = convert(values[index])
        row = MessageRow()
        row.__dict__ = dict(zip(names, values, strict=True))
        rows.append(row)
    _attach_senders_and_media(rows)
    return rows


def message_page(*, window: HistoryWindow, limit: int) -> tuple[list[MessageRow], bool]:
    """(messages newest first, has_more) of a history window, without those the viewer cleared
    or hid (contract 15).

    With an `after` anchor it pages toward newer messages: the `limit` messages just newer than
    it (still listed newest first); `has_more` says whether more exist beyond the page in its
    paging direction. Each sender is made once, not once per message; page_reactions gives the
    viewer's reactions without a query.
    """
    bounds = ""
    if window.before_seq is not None:
        bounds += " AND m.seq < %(before)s"
    lower = max(window.cleared_seq, window.after_seq or 0)
    if lower:  # seqs start at 1: no bound at all is the same rows, and the planner's best guess
        bounds += " AND m.seq > %(after)s"
    if window.hides_messages:
        bounds += " AND NOT " + _HIDDEN.format(m="m")
    direction = "ASC" if window.after_seq is not None else "DESC"
    params = {
        "user": window.viewer_id,
        "conversation": window.conversation_id,
        "viewer": window.viewer_id,
        "before": window.before_seq,
        "after": lower,
        "rows": limit + 1,
    }
    rows = message_rows(_PAGE.format(bounds=bounds, direction=direction), params)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if window.after_seq is not None:
        rows.reverse()
    return rows, has_more


def page_reactions(rows: list[MessageRow]) -> dict[int, list[dict]]:
    """reactions_of's answer for a page from plain SQL (message_rows), from its own rows."""
    return {
        message.id: [{"emoji": emoji, "count": count, "reacted": bool(reacted)} for emoji, count, reacted in found]
        for message in rows
        if (found := message.viewer_reactions)
    }


def _attach_senders_and_media(rows: list[MessageRow]) -> None:
    """Gives each message of message_rows its sender, the original it replies to and its
    upload: each sender made once, the uploads in one query."""
    senders = {}

    def sender_of(user_id, username, nickname):
        sender = senders.get(user_id)
        if sender is None:
            sender = senders[user_id] = stored(User, id=user_id, username=username, nickname=nickname)
        return sender

    for message in rows:
        message.sender = sender_of(message.sender_id, message.sender_username, message.sender_nickname)
        if message.reply_to_id is not None and message.reply_row is not None:
            seq, sender_id, type, text, status, username, nickname = message.reply_row
            message.reply_to = original = MessageRow()
            original.__dict__ = {
                "id": message.reply_to_id,
                "conversation_id": message.conversation_id,
                "seq": seq,
                "sender_id": sender_id,
                "type": type,
                "content": text,
                "status": status,
                "sender": sender_of(sender_id, username, nickname),
            }
    media_ids = {message.media_id for message in rows if message.media_id is not None}
    if media_ids:
        uploads = Media.objects.in_bulk(media_ids)
        for message in rows:
            if message.media_id is not None:
                message.media = uploads[message.media_id]


_REACTIONS = """
SELECT message_id, emoji, COUNT(*), MAX(CASE WHEN user_id = %s THEN 1 ELSE 0 END)
FROM chat_reaction WHERE message_id IN ({ids})
GROUP BY message_id, emoji
ORDER BY MIN(id)
"""


def reactions_of(message_ids: Iterable[int], *, viewer_id: int) -> dict[int, list[dict]]:
    """{message id: [{emoji, count, reacted}]} for these messages, each emoji in the order it was
    first used, `reacted` for the viewer's own: one query for a whole page."""
    message_ids = list(message_ids)
    summaries = {}
    if not message_ids:
        return summaries
    with connection.cursor() as cursor:
        cursor.execute(_REACTIONS.format(ids=",".join(["%s"] * len(message_ids))), [viewer_id, *message_ids])
        for message_id, emoji, count, reacted in cursor.fetchall():
            summaries.setdefault(message_id, []).append({"emoji": emoji, "count": count, "reacted": bool(reacted)})
    return summaries


def reaction_emoji_count(message_id: int) -> int:
    """How many distinct emoji a message has (the cap of chat.reactions)."""
    return Reaction.objects.filter(message_id=message_id).values("emoji").distinct().count()


# Every read and delivery asks for these; plain SQL, as compiling the ORM's queries was most of
# a read's CPU.
_LOWEST_POINTERS = """
SELECT * FROM (SELECT 0, user_id, receipt_seq FROM chat_membership WHERE conversation_id = %(conversation)s
               ORDER BY receipt_seq, user_id LIMIT 2) AS lowest_read
UNION ALL
SELECT * FROM (SELECT 1, user_id, delivered_seq FROM chat_membership WHERE conversation_id = %(conversation)s
               ORDER BY delivered_seq, user_id LIMIT 2) AS lowest_delivered
"""


def lowest_pointers(conversation_id: int) -> tuple[list, list]:
    """Whether every member but a message's sender has read (receipt_seq) or has (delivered_seq)
    a message depends on these alone: ([(user, receipt_seq)], [(user, delivered_seq)]), each the
    two lowest in order (the lowest, unless it is the sender's own, then the second). One query."""
    with connection.cursor() as cursor:
        cursor.execute(_LOWEST_POINTERS, {"conversation": conversation_id})
        rows = sorted(cursor.fetchall(), key=lambda row: (row[0], row[2], row[1]))
    return [(user, seq) for kind, user, seq in rows if kind == 0], [(user, seq) for kind, user, seq in rows if kind]


def read_horizon(conversation_id: int) -> Callable[[int, int], str]:
    """A function seq, sender -> the message's status: "read" once every member but the sender
    has read up to seq, "delivered" once they all have it, else "sent" (contract 5, 19)."""
    return _status_of(*lowest_pointers(conversation_id))


def read_horizons(conversation_ids: Iterable[int]) -> dict[int, Callable[[int, int], str]]:
    """read_horizon for many conversations in one query: {conversation_id: status_of}."""
    lowest = {conversation_id: {"receipt_seq": [], "delivered_seq": []} for conversation_id in conversation_ids}
    if lowest:

        def rank(pointer):
            return Window(RowNumber(), partition_by=[F("conversation_id")], order_by=[F(pointer), F("user_id")])

        rows = (
            Membership.objects.filter(conversation_id__in=lowest)
            .annotate(read_rank=rank("receipt_seq"), delivered_rank=rank("delivered_seq"))
            .filter(Q(read_rank__lte=2) | Q(delivered_rank__lte=2))
            .values_list("conversation_id", "user_id", "receipt_seq", "delivered_seq", "read_rank", "delivered_rank")
        )
        for conversation_id, user_id, read, delivered, read_rank, delivered_rank in rows:
            if read_rank <= 2:
                lowest[conversation_id]["receipt_seq"].append((read_rank, user_id, read))
            if delivered_rank <= 2:
                lowest[conversation_id]["delivered_seq"].append((delivered_rank, user_id, delivered))
    return {
        conversation_id: _status_of(
            *([(u, seq) for _, u, seq in sorted(p[kind])] for kind in ("receipt_seq", "delivered_seq"))
        )
        for conversation_id, p in lowest.items()
    }


def _covered(lowest):
    def covered(seq, sender_id):
        for user_id, pointer in lowest:  # the lowest pointer of a member other than the sender
            if user_id != sender_id:
                return pointer >= seq
        return False

    return covered


def _status_of(lowest_read, lowest_delivered):
    is_read, is_delivered = _covered(lowest_read), _covered(lowest_delivered)

    def status_of(seq, sender_id):
        if is_read(seq, sender_id):
            return "read"
        return "delivered" if is_delivered(seq, sender_id) else "sent"

    return status_of


def _covered_by_all(lowest, name):
    """SQL for a conversation's messages (alias m) that every member but their sender has up to
    the pointer whose two lowest values `lowest` gives (lowest_pointers), with its parameters
    prefixed `name`; None if nobody else."""
    if len(lowest) < 2:
        return None
    (lowest_user, lowest_seq), (_, second_seq) = lowest
    sql = f"(m.seq <= %({name}_seq)s OR (m.sender_id = %({name}_user)s AND m.seq <= %({name}_second)s))"
    return sql, {f"{name}_seq": lowest_seq, f"{name}_user": lowest_user, f"{name}_second": second_seq}


# The newest `per_sender` messages of each sender but the reader among seqs (after, upto] that
# `covered` selects, newest first.
_NEWEST_OF_EACH_SENDER = """
SELECT id, sender_id FROM (
    SELECT m.id, m.sender_id, m.seq, row_number() OVER (PARTITION BY m.sender_id ORDER BY m.seq DESC) AS newest
    FROM chat_message m
    WHERE m.conversation_id = %(conversation)s AND m.seq > %(after)s AND m.seq <= %(upto)s
        AND m.sender_id <> %(reader)s AND m.status <> %(removed)s AND {covered}
) AS ranked
WHERE newest <= %(per_sender)s
ORDER BY seq DESC
"""


def _newest_of_each_sender(covered, params):
    params = {**params, "removed": Message.Status.REMOVED.value}
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST_OF_EACH_SENDER.format(covered=covered), params)
        return cursor.fetchall()


def messages_read_by_all(
    *, conversation_id: int, reader_id: int, after: int, upto: int, per_sender: int, pointers: tuple[list, list]
) -> list[tuple[int, int]]:
    """The messages of others in seqs (after, upto] that every member but their sender has
    read (by `pointers`, lowest_pointers' answer), at most the newest `per_sender` of each
    sender, newest first: (id, sender_id). Bounded in the database however long the backlog a
    read covers."""
    lowest_read, _ = pointers
    read_by_all = _covered_by_all(lowest_read, "read")
    if read_by_all is None:
        return []
    covered, params = read_by_all
    return _newest_of_each_sender(
        covered,
        {**params, "conversation": conversation_id, "reader": reader_id, "after": after, "upto": upto,
         "per_sender": per_sender},
    )  # fmt: skip


def messages_newly_delivered(
    *, conversation_id: int, reader_id: int, after: int, upto: int, pointers: tuple[list, list]
) -> list[tuple[int, int]]:
    """For each sender but reader_id, the newest of their messages in seqs (after, upto] that
    every other member now has and not every one has read yet (by `pointers`, lowest_pointers'
    answer): [(id, sender_id)] (one "delivered" covers the sender's earlier messages)."""
    lowest_read, lowest_delivered = pointers
    if len(lowest_delivered) < 2 or lowest_delivered[1][1] <= after:  # nothing after `after` that all others have
        return []
    delivered, params = _covered_by_all(lowest_delivered, "delivered")
    # Two members or more here, so the read pointers have two lowest as well.
    read, read_params = _covered_by_all(lowest_read, "read")
    return _newest_of_each_sender(
        f"{delivered} AND NOT {read}",
        {**params, **read_params, "conversation": conversation_id, "reader": reader_id, "after": after,
         "upto": upto, "per_sender": 1},
    )  # fmt: skip


def message_delivery_pending(*, conversation_id: int, message_id: int) -> bool:
    """Whether a "delivered" for the message is still news: every other member has it, not
    every one has read it, and it was not removed."""
    status = (
        Message.objects.filter(pk=message_id, conversation_id=conversation_id)
        .exclude(status=Message.Status.REMOVED)
        .values_list("seq", "sender_id")
        .first()
    )
    return status is not None and read_horizon(conversation_id)(*status) == "delivered"


def member_ids(conversation_id: int) -> list[int]:
    """The audience of every message: plain SQL, as it runs on every send."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id FROM chat_membership WHERE conversation_id = %s", [conversation_id])
        return [user_id for (user_id,) in cursor.fetchall()]


def message_seq(conversation_id: int, message_id: int) -> int | None:
    """The seq of a message of this conversation (None: not one of it); plain SQL, as every read
    and delivered ack asks it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq FROM chat_message WHERE id = %s AND conversation_id = %s", [message_id, conversation_id]
        )
        row = cursor.fetchone()
    return row[0] if row else None


def message_id_at(conversation_id: int, seq: int) -> int | None:
    """Plain SQL: every read asks it twice."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM chat_message WHERE conversation_id = %s AND seq = %s", [conversation_id, seq])
        row = cursor.fetchone()
    return row[0] if row else None


def _memberships(user: User) -> list[dict]:
    rows = Membership.objects.filter(user=user).select_related("conversation__group").order_by("pk")
    return [
        {
            "conversation_id": format_id("c", m.conversation_id),
            "type": m.conversation.type,
            "group_id": format_id("g", m.conversation.group.pk) if m.conversation.type == "group" else None,
            "group_name": m.conversation.group.name if m.conversation.type == "group" else None,
            "peer_id": str(m.peer_id) if m.peer_id else None,
            "role": m.role,
            "joined_at": m.joined_at,
        }
        for m in rows
    ]


def _messages(user: User) -> Iterator[dict]:
    for message in Message.objects.filter(sender=user).order_by("pk").iterator(chunk_size=2000):
        yield {
            "message_id": format_id("m", message.pk),
            "conversation_id": format_id("c", message.conversation_id),
            "type": message.type,
            "content": message.content,
            "caption": message.caption,
            "status": message.status,
            "created_at": message.created_at,
            "updated_at": message.updated_at,
            "edited_at": message.edited_at,
            "mentions": [str(user_id) for user_id in message.mentions],
            "mentions_all": message.mentions_all,
        }


def _edits(user: User) -> Iterator[dict]:
    """What the user's messages said before each of their edits (the history moderators see)."""
    rows = MessageEdit.objects.filter(editor=user).select_related("message").order_by("pk")
    for edit in rows.iterator(chunk_size=2000):
        yield {
            "message_id": format_id("m", edit.message_id),
            "conversation_id": format_id("c", edit.message.conversation_id),
            "content": edit.content,
            "caption": edit.caption,
            "edited_at": edit.edited_at,
        }


def _reactions(user: User) -> Iterator[dict]:
    rows = Reaction.objects.filter(user=user).select_related("message").order_by("pk")
    for reaction in rows.iterator(chunk_size=2000):
        yield {
            "message_id": format_id("m", reaction.message_id),
            "conversation_id": format_id("c", reaction.message.conversation_id),
            "emoji": reaction.emoji,
            "created_at": reaction.created_at,
        }


def _mentioned_in(user: User) -> Iterator[dict]:
    """The messages that mention the user by id (the Mention rows kept about them), not what
    others wrote in them."""
    rows = Mention.objects.filter(user=user).select_related("message").order_by("pk")
    for mention in rows.iterator(chunk_size=2000):
        yield {
            "message_id": format_id("m", mention.message_id),
            "conversation_id": format_id("c", mention.message.conversation_id),
            "sender_id": str(mention.message.sender_id),
            "created_at": mention.message.created_at,
        }


def export_sections(user: User) -> dict:
    """Chat's part of a data export (privacy.services.user_export); messages, their edits,
    reactions and mentions are read as written out."""
    return {
        "memberships": _memberships(user),
        "messages": _messages(user),
        "message_edits": _edits(user),
        "reactions": _reactions(user),
        "mentioned_in": _mentioned_in(user),
    }


def media_in_use(media_id: int) -> bool:
    """Whether a message still carries the upload (media.services.media_discard_if_unused asks)."""
    return Message.objects.filter(media_id=media_id).exists()


# --- For moderators (moderation.selectors and the admin) ---------------------------------------

MESSAGES_AROUND = 3  # messages shown before and after a reported one
RECENT_MESSAGES = 20


def message_seen_by(*, user: User, message_id: int) -> bool:
    """Whether the message is in one of the user's conversations (what they may report)."""
    return Message.objects.filter(pk=message_id, conversation__memberships__user=user).exists()


def message_with_conversation(message_id: int) -> Message | None:
    return Message.objects.select_related("conversation__group").filter(pk=message_id).first()


def user_recent_messages(user: User, limit: int = RECENT_MESSAGES) -> list[Message]:
    """The user's newest messages, newest first (index chat_message_sender_recent)."""
    return list(
        Message.objects.filter(sender=user).select_related("sender", "conversation__group").order_by("-pk")[:limit]
    )


def messages_around(message: Message, count: int = MESSAGES_AROUND) -> list[Message]:
    """The message with up to `count` messages before and after it in its conversation."""
    return list(
        Message.objects.filter(
            conversation_id=message.conversation_id, seq__gte=message.seq - count, seq__lte=message.seq + count
        )
        .select_related("sender", "conversation__group")
        .order_by("seq")
    )


def conversations_count() -> int:
    return Conversation.objects.count()


def messages_since(start: datetime) -> int:
    return Message.objects.filter(created_at__gte=start).count()
