"""The one module through which services emit realtime events.

`record()` stores change events in the caller's transaction (the durable log of contract 7.1)
and hands them to the bus only after that transaction commits, so a rolled-back write never
reaches a client and a committed one is never lost. `publish_rollback_unsafe()` is for
ephemeral frames with no write behind them (relayed ICE candidates). `disconnect_user_on_commit()`
closes every socket of a user, on whichever process it is.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass

import orjson
from django.db import connection, transaction

from imserver import metrics
from imserver.api import dumps
from realtime import bus, cache
from realtime.models import EventOutbox, EventPayload, UserEvent

# The event types a worker announces outside the sockets, and whether it is on now (an app above
# registers them: push, while a provider is configured). Their payloads get an outbox row.
_outbox_types: frozenset[str] = frozenset()
_outbox_enabled = bool  # bool() is False: off until registered


def outbox_register(types, *, enabled) -> None:
    global _outbox_types, _outbox_enabled
    _outbox_types, _outbox_enabled = frozenset(types), enabled


@dataclass
class Event:
    user_ids: object  # iterable of user ids (ints)
    type: str
    data: dict
    own_user_id: int | None = None  # this recipient gets own_data instead of data
    own_data: dict | None = None
    message_id: int | None = None  # the message whose content data carries (scrubbed on removal)


# One statement, one round trip: the payloads get their ids, each recipient's counter moves by
# the number of events they get (counters locked in user-id order, so concurrent transactions
# cannot deadlock), and the deliveries are numbered in event order.
_STORE_POSTGRESQL = """
WITH events AS (
    SELECT e.*, nextval(pg_get_serial_sequence('realtime_eventpayload', 'id')) AS id
    FROM json_to_recordset(%(events)s::json)
        AS e(ord bigint, type text, data text, own_user_id bigint, own_data text, message_id bigint, outbox boolean)
), payload AS (
    INSERT INTO realtime_eventpayload (id, type, data, own_user_id, own_data, message_id, created_at)
    SELECT id, type, data, own_user_id, own_data, message_id, now() FROM events
), input AS (
    SELECT r.user_id, r.ord, events.id AS payload_id
    FROM unnest(%(user_ids)s::bigint[], %(ords)s::bigint[]) AS r(user_id, ord) JOIN events USING (ord)
), counts AS (
    SELECT user_id, count(*) AS n FROM input GROUP BY user_id
), next AS (
    INSERT INTO realtime_eventstream (user_id, last_id)
    SELECT user_id, n FROM counts ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET last_id = realtime_eventstream.last_id + EXCLUDED.last_id
    RETURNING user_id, last_id
), numbered AS (
    SELECT i.user_id, i.ord, i.payload_id,
           n.last_id - count(*) OVER w + row_number() OVER (w ORDER BY i.ord) AS seq
    FROM input i JOIN next n USING (user_id)
    WINDOW w AS (PARTITION BY i.user_id)
), delivered AS (
    INSERT INTO realtime_userevent (user_id, seq, payload_id) SELECT user_id, seq, payload_id FROM numbered
), outbox AS (
    INSERT INTO realtime_eventoutbox (payload_id, not_before, attempts) SELECT id, now(), 0 FROM events WHERE outbox
)
SELECT user_id, seq, ord - 1 FROM numbered
"""


def _store_postgresql(encoded, recipients, outbox):
    # The events go as one JSON document: psycopg's escaping of a text array costs more CPU
    # than the rest of the statement's parameters together (the payloads are JSON, full of quotes).
    keys = ("type", "data", "own_user_id", "own_data", "message_id")
    events = [
        {"ord": ord, "outbox": wanted, **dict(zip(keys, event, strict=True))}
        for ord, (event, wanted) in enumerate(zip(encoded, outbox, strict=True), start=1)
    ]
    user_ids, indexes = zip(*recipients, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            _STORE_POSTGRESQL,
            {
                "events": orjson.dumps(events).decode(),
                "user_ids": list(user_ids),
                "ords": [index + 1 for index in indexes],
            },
        )
        return cursor.fetchall()


def _store_generic(encoded, recipients, outbox):
    # SQLite: the write lock taken at BEGIN IMMEDIATE already serializes every writer.
    payloads = EventPayload.objects.bulk_create(
        [EventPayload(type=t, data=d, own_user_id=o, own_data=od, message_id=m) for t, d, o, od, m in encoded]
    )
    counts = Counter(user_id for user_id, _ in recipients)
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
    for user_id, index in sorted(recipients, key=lambda recipient: recipient[1]):
        next_id[user_id] += 1
        rows.append((user_id, next_id[user_id], index))
    UserEvent.objects.bulk_create(
        [UserEvent(user_id=u, seq=s, payload_id=payloads[i].pk) for u, s, i in rows], batch_size=300
    )
    EventOutbox.objects.bulk_create(
        [EventOutbox(payload_id=payload.pk) for payload, wanted in zip(payloads, outbox, strict=True) if wanted]
    )
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
    encoded = [
        (
            event.type,
            dumps(event.data).decode(),
            event.own_user_id,
            dumps(event.own_data).decode() if event.own_data is not None else None,
            event.message_id,
        )
        for event in events
    ]
    recipients = [
        (user_id, index) for index, event in enumerate(events) for user_id in {int(u) for u in event.user_ids}
    ]
    outbox_on = _outbox_enabled()
    outbox = [outbox_on and event.type in _outbox_types for event in events]
    store = _store_postgresql if connection.vendor == "postgresql" else _store_generic
    delivered = defaultdict(list)
    for user_id, seq, index in store(encoded, recipients, outbox):
        delivered[index].append((user_id, seq))
    messages = [
        bus.event_message(type, data, delivered[index], own_user_id, own_data)
        for index, (type, data, own_user_id, own_data, _) in enumerate(encoded)
    ]
    transaction.on_commit(lambda: bus.publish(messages), robust=True)
    if queued := sum(outbox):  # push jobs: an outbox row each, counted once committed
        transaction.on_commit(lambda: metrics.PUSH_JOBS.labels("queued").inc(queued))


def publish_rollback_unsafe(user_ids, type, data):
    """Sends an ephemeral frame (no id, not stored) right away, whatever any transaction does."""
    bus.publish([bus.ephemeral_message(type, dumps(data).decode(), sorted({int(u) for u in user_ids}))])


def disconnect_user_on_commit(user_id, code):
    transaction.on_commit(lambda: bus.publish([bus.close_message(int(user_id), code)]), robust=True)


def disconnect_device_on_commit(user_id, device_id, code):
    """Closes the sockets opened with one device's tokens, on whichever process they are."""
    message = bus.close_message(int(user_id), code, device_id=int(device_id))
    transaction.on_commit(lambda: bus.publish([message]), robust=True)


def invalidate_on_commit(topic, keys):
    """Once the transaction commits, drops the realtime.cache entries `keys` of `topic` here at
    once and on every other process through the bus."""
    keys = list(keys)

    def drop():
        cache.dropped(topic, keys)
        bus.publish([bus.invalidate_message(topic, keys)])

    transaction.on_commit(drop, robust=True)
