"""Message search (contract 20): the index and its one query.

The index, table chat_message_search (migration 0005), holds the tokens of imserver.textsearch
for each searchable message: a `tsvector` under a GIN index on PostgreSQL, an FTS5 table on
SQLite (rowid = message id). A new message is indexed by the statement that stores it
(message_insert); every later write that changes what a message says calls
message_index_update or message_index_remove in its own transaction, so the index is never
behind what the database says (docs/search.md).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from chat.models import Membership, Message
from chat.selectors import MESSAGE_COLUMNS, MESSAGE_JOINS, MessageRow, message_rows
from imserver import textsearch


def _is_postgres():
    return connection.vendor == "postgresql"


def searchable_text(message: Message) -> str:
    """What a message is found by: a text's content, a media message's caption; nothing for a
    removed message or a call record."""
    if message.status == Message.Status.REMOVED or message.type == Message.Type.CALL:
        return ""
    return message.content if message.type == Message.Type.TEXT else (message.caption or "")


def scoped_tokens(conversation_id: int, tokens: list[str]) -> list[str]:
    """PostgreSQL stores each token under its conversation (`12:上海`), so that the GIN index
    finds a word in the caller's conversations without going through its every occurrence in all
    of them: a frequent word costs the caller's matches, not the database's (docs/search.md)."""
    return [f"{conversation_id}:{token}" for token in tokens]


def message_document(message: Message) -> str | None:
    """The index's form of what a message is found by, for the database in use; None when
    nothing of it is searchable."""
    tokens = textsearch.document_tokens(searchable_text(message))
    if not tokens:
        return None
    if _is_postgres():
        return textsearch.tsvector_literal(scoped_tokens(message.conversation_id, tokens))
    return textsearch.fts5_document(tokens)


_UPSERT_POSTGRES = """
INSERT INTO chat_message_search (message_id, conversation_id, sender_id, document) VALUES (%s, %s, %s, %s::tsvector)
ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document
"""
_DELETE_POSTGRES = "DELETE FROM chat_message_search WHERE message_id = %s"
_INSERT_SQLITE = "INSERT INTO chat_message_search (rowid, conversation_id, sender_id, document) VALUES (%s, %s, %s, %s)"
_DELETE_SQLITE = "DELETE FROM chat_message_search WHERE rowid = %s"


# A new message, its index row and what the send writes about it, in one statement: one round
# trip (issue 16's send overhead, issue 18's statements per send).
_INSERT_POSTGRES = "WITH m AS ({insert}){also} SELECT id FROM m"
_INDEX_ROW_POSTGRES = """
, s AS (
    INSERT INTO chat_message_search (message_id, conversation_id, sender_id, document)
    SELECT id, %(search_conversation)s, %(search_sender)s, %(search_document)s::tsvector FROM m
)"""


def message_insert(cursor, insert_sql: str, params: dict, message: Message, then: str = "") -> int:
    """Runs a new message's `INSERT ... RETURNING id` (chat.services.message_store), indexes the
    message and runs `then`, a statement about it that names its id {message_id}: on PostgreSQL
    all in one statement, on SQLite one after the other. Returns the id."""
    document = message_document(message)
    if _is_postgres():
        also = ""
        if document is not None:
            also += _INDEX_ROW_POSTGRES
            params = {
                **params,
                "search_conversation": message.conversation_id,
                "search_sender": message.sender_id,
                "search_document": document,
            }
        if then:
            also += f", t AS ({then.strip().format(message_id='(SELECT id FROM m)')})"
        cursor.execute(_INSERT_POSTGRES.format(insert=insert_sql.strip(), also=also), params)
        return cursor.fetchone()[0]
    cursor.execute(insert_sql, params)
    message_id = cursor.fetchone()[0]
    if document is not None:
        cursor.execute(_INSERT_SQLITE, [message_id, message.conversation_id, message.sender_id, document])
    if then:
        cursor.execute(then.format(message_id="%(message_id)s"), {**params, "message_id": message_id})
    return message_id


def message_index_update(message: Message) -> None:
    """Indexes a message as it now is (send, edit), or takes it out when nothing of it is
    searchable any more (removed, recalled). Call it inside the transaction of the change."""
    _index_write([message])


def message_index_remove(message: Message) -> None:
    """Takes a message out of the index (removal, recall): it is never found again."""
    with connection.cursor() as cursor:
        cursor.execute(_DELETE_POSTGRES if _is_postgres() else _DELETE_SQLITE, [message.pk])


def _index_write(messages):
    rows = [(message, message_document(message)) for message in messages]
    kept = [(m.pk, m.conversation_id, m.sender_id, document) for m, document in rows if document]
    with connection.cursor() as cursor:
        if _is_postgres():
            gone = [(message.pk,) for message, document in rows if document is None]
            if gone:
                cursor.executemany(_DELETE_POSTGRES, gone)
            if kept:
                cursor.executemany(_UPSERT_POSTGRES, kept)
        else:  # FTS5 has no upsert: out, then in again
            cursor.executemany(_DELETE_SQLITE, [(message.pk,) for message, _ in rows])
            if kept:
                cursor.executemany(_INSERT_SQLITE, kept)


def message_index_rebuild(*, batch_size: int = 5000) -> Iterator[tuple[int, int]]:
    """(Re)indexes every message, oldest first, a transaction per batch; yields (messages done,
    last message id) after each batch. Safe to run while the server runs and to run again."""
    done, last_id = 0, 0
    while True:
        with transaction.atomic():
            batch = list(
                Message.objects.filter(pk__gt=last_id)
                .order_by("pk")
                .only("conversation_id", "sender_id", "type", "content", "caption", "status")[:batch_size]
            )
            if not batch:
                return
            _index_write(batch)
        done += len(batch)
        last_id = batch[-1].pk
        yield done, last_id


# --- The query ----------------------------------------------------------------------------------

# The page's ids and the total from the index alone (removed messages are never in it), then the
# rows of the page. `mb` is the caller's membership of each match's conversation: only their
# conversations, and the place where what they cleared (contract 15) is left out: the index has
# no seqs, but message ids grow with seq within a conversation (sends insert under its lock), so
# the cleared are the ids up to that of the message at cleared_seq. The messages they hid for
# themselves are left out by their MessageHidden rows.
_SEARCH = (
    "SELECT"
    + MESSAGE_COLUMNS
    + """, page.total
FROM (
    SELECT s.{key} AS id, COUNT(*) OVER () AS total
    FROM chat_message_search s
    JOIN chat_membership mb ON mb.conversation_id = s.conversation_id AND mb.user_id = %(user)s
    WHERE {match} {filters}
      AND (mb.cleared_seq = 0 OR s.{key} > (
          SELECT c.id FROM chat_message c WHERE c.conversation_id = mb.conversation_id AND c.seq = mb.cleared_seq))
      AND NOT EXISTS (SELECT 1 FROM chat_messagehidden h WHERE h.user_id = %(user)s AND h.message_id = s.{key})
    ORDER BY s.{key} DESC
    LIMIT %(limit)s OFFSET %(offset)s
) page
JOIN chat_message m ON m.id = page.id"""
    + MESSAGE_JOINS
    + """WHERE m.status <> 'removed'
ORDER BY m.id DESC
"""
)


def _postgres_query(tokens, conversation_ids):
    """The phrase in each of the caller's conversations: a disjunction the GIN index answers from
    the short lists of those conversations' tokens."""
    return " | ".join(f"( {textsearch.tsquery_literal(scoped_tokens(c, tokens))} )" for c in conversation_ids)


def messages_search(
    *, user, query: str, conversation_id: int | None = None, sender_id: int | None = None, limit: int, offset: int
) -> tuple[int, list[MessageRow]]:
    """(total, page) of the caller's messages that match query, newest first, only from their
    conversations. One query for the page and its total (on PostgreSQL one more for the caller's
    conversations; one more past the last page), and one for the page's uploads if it has any."""
    tokens = textsearch.query_tokens(query)
    if not tokens:
        return 0, []
    filters = ""
    if conversation_id is not None:
        filters += " AND s.conversation_id = %(conversation)s"
    if sender_id is not None:
        filters += " AND s.sender_id = %(sender)s"
    if _is_postgres():
        if conversation_id is not None:
            conversation_ids = [conversation_id]
        else:
            conversation_ids = list(Membership.objects.filter(user=user).values_list("conversation_id", flat=True))
        if not conversation_ids:
            return 0, []
        match, key = "s.document @@ %(query)s::tsquery", "message_id"
        query_text = _postgres_query(tokens, conversation_ids)
    else:
        match, key = "chat_message_search MATCH %(query)s", "rowid"
        query_text = textsearch.fts5_query(tokens)
    params = {
        "query": query_text,
        "user": user.pk,
        "viewer": user.pk,
        "conversation": conversation_id,
        "sender": sender_id,
        "limit": limit,
        "offset": offset,
    }
    sql = _SEARCH.format(key=key, match=match, filters=filters)
    with _through_the_search_index():
        page = message_rows(sql, params)
        if page:
            return page[0].total, page
        if not offset:
            return 0, []
        # Past the last page: the total from the first one.
        first = message_rows(sql, {**params, "offset": 0, "limit": 1})
    return (first[0].total if first else 0), []


_BITMAP_SCANS_ONLY = """
SELECT set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true),
       set_config('max_parallel_workers_per_gather', '0', true)
"""


@contextmanager
def _through_the_search_index():
    """PostgreSQL guesses that a disjunction of a few hundred prefixes matches most rows (each
    prefix is given a fixed share), and would then walk every message newest first to fill the
    page, or scan them all: 20 s over a million messages where the GIN index takes milliseconds
    (docs/search.md). For this one query, in its own transaction, only bitmap scans are allowed,
    which leaves the GIN index as the way to the matches; and no parallel workers, which that guess
    would start for a few thousand rows."""
    if not _is_postgres():
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_BITMAP_SCANS_ONLY)
        yield
