"""The one module through which services emit realtime events.

`record()` stores change events in the caller's transaction (the durable log of contract 7.1)
and hands them to the bus only after that transaction commits, so a rolled-back write never
reaches a client and a committed one is never lost. `publish_rollback_unsafe()` is for
ephemeral frames with no write behind them (relayed ICE candidates). `disconnect_user_on_commit()`
closes every socket of a user, on whichever process it is.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass

from django.db import connection, transaction

from imserver.api import dumps
from realtime import bus
from realtime.models import EventPayload, UserEvent


@dataclass
class Event:
    user_ids: object  # iterable of user ids (ints)
    type: str
    data: dict
    own_user_id: int | None = None  # this recipient gets own_data instead of data
    own_data: dict | None = None


def _allocate_postgresql(pairs):
    """Event ids for (user, payload) pairs in one statement: each user's counter moves by the
    number of their events, locked in user-id order; ids follow payload order."""
    user_ids, payload_ids = zip(*pairs, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH input AS (
                SELECT * FROM unnest(%s::bigint[], %s::bigint[]) AS t(user_id, payload_id)
            ), counts AS (
                SELECT user_id, count(*) AS n FROM input GROUP BY user_id
            ), next AS (
                INSERT INTO realtime_eventstream (user_id, last_id)
                SELECT user_id, n FROM counts ORDER BY user_id
                ON CONFLICT (user_id) DO UPDATE SET last_id = realtime_eventstream.last_id + EXCLUDED.last_id
                RETURNING user_id, last_id
            ), numbered AS (
                SELECT i.user_id, i.payload_id,
                       n.last_id - count(*) OVER w + row_number() OVER (w ORDER BY i.payload_id) AS seq
                FROM input i JOIN next n USING (user_id)
                WINDOW w AS (PARTITION BY i.user_id)
            )
            INSERT INTO realtime_userevent (user_id, seq, payload_id)
            SELECT user_id, seq, payload_id FROM numbered
            RETURNING user_id, seq, payload_id
            """,
            [list(user_ids), list(payload_ids)],
        )
        return cursor.fetchall()


def _allocate_generic(pairs):
    # SQLite: the write lock taken at BEGIN IMMEDIATE already serializes every writer.
    counts = Counter(user_id for user_id, _ in pairs)
    users = sorted(counts)
    last = {}
    with connection.cursor() as cursor:
        for start in range(0, len(users), 400):  # SQLite's bound-parameter limit
            chunk = users[start : start + 400]
            cursor.execute(
                f"""
                INSERT INTO realtime_eventstream (user_id, last_id) VALUES {",".join(["(%s, %s)"] * len(chunk))}
                ON CONFLICT (user_id) DO UPDATE SET last_id = last_id + excluded.last_id
                RETURNING user_id, last_id
                """,
                [value for user_id in chunk for value in (user_id, counts[user_id])],
            )
            last.update(cursor.fetchall())
    next_id = {user_id: last[user_id] - counts[user_id] for user_id in users}
    rows = []
    for user_id, payload_id in sorted(pairs, key=lambda pair: pair[1]):
        next_id[user_id] += 1
        rows.append((user_id, next_id[user_id], payload_id))
    UserEvent.objects.bulk_create([UserEvent(user_id=u, seq=s, payload_id=p) for u, s, p in rows], batch_size=300)
    return rows


def record(*events):
    """Stores change events for their recipients; delivers them live after commit.

    Call it once per transaction, as the service's last write: the recipients' counters stay
    locked until commit, and one call takes all of them in a single ordered sweep (no deadlocks).
    """
    if not connection.in_atomic_block:
        with transaction.atomic():
            return record(*events)
    events = [event for event in events if event.user_ids]
    if not events:
        return
    payloads = EventPayload.objects.bulk_create(
        [
            EventPayload(
                type=event.type,
                data=dumps(event.data).decode(),
                own_user_id=event.own_user_id,
                own_data=dumps(event.own_data).decode() if event.own_data is not None else None,
            )
            for event in events
        ]
    )
    pairs = [
        (user_id, payload.pk)
        for event, payload in zip(events, payloads, strict=True)
        for user_id in {int(u) for u in event.user_ids}
    ]
    allocate = _allocate_postgresql if connection.vendor == "postgresql" else _allocate_generic
    recipients = defaultdict(list)
    for user_id, seq, payload_id in allocate(pairs):
        recipients[payload_id].append((user_id, seq))
    messages = [
        bus.event_message(payload.type, payload.data, recipients[payload.pk], payload.own_user_id, payload.own_data)
        for payload in payloads
    ]
    transaction.on_commit(lambda: bus.publish(messages), robust=True)


def publish_rollback_unsafe(user_ids, type, data):
    """Sends an ephemeral frame (no id, not stored) right away, whatever any transaction does."""
    bus.publish([bus.ephemeral_message(type, dumps(data).decode(), sorted({int(u) for u in user_ids}))])


def disconnect_user_on_commit(user_id, code):
    transaction.on_commit(lambda: bus.publish([bus.close_message(int(user_id), code)]), robust=True)
