"""The one module through which services emit realtime events.

`record()` stores change events in the caller's transaction (the durable log of contract 7.1)
and hands them to the bus only after that transaction commits, so a rolled-back write never
reaches a client and a committed one is never lost. `publish_rollback_unsafe()` is for
ephemeral frames with no write behind them (relayed ICE candidates). `disconnect_user_on_commit()`
closes every socket of a user, on whichever process it is.
"""

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


def _allocate_ids_postgresql(user_ids, payload_id):
    """Next event id of every user, in one statement, locking their counters in id order."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH next AS (
                INSERT INTO realtime_eventstream (user_id, last_id)
                SELECT u, 1 FROM unnest(%s::bigint[]) AS u ORDER BY u
                ON CONFLICT (user_id) DO UPDATE SET last_id = realtime_eventstream.last_id + 1
                RETURNING user_id, last_id
            )
            INSERT INTO realtime_userevent (user_id, seq, payload_id)
            SELECT user_id, last_id, %s FROM next
            RETURNING user_id, seq
            """,
            [user_ids, payload_id],
        )
        return cursor.fetchall()


def _allocate_ids_generic(user_ids, payload_id):
    # SQLite: the write lock taken at BEGIN IMMEDIATE already serializes every writer.
    placeholders = ",".join(["(%s, 1)"] * len(user_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO realtime_eventstream (user_id, last_id) VALUES {placeholders}
            ON CONFLICT (user_id) DO UPDATE SET last_id = last_id + 1
            RETURNING user_id, last_id
            """,
            user_ids,
        )
        rows = cursor.fetchall()
    UserEvent.objects.bulk_create([UserEvent(user_id=u, seq=s, payload_id=payload_id) for u, s in rows])
    return rows


def _allocate(user_ids, payload_id):
    if connection.vendor == "postgresql":
        return _allocate_ids_postgresql(user_ids, payload_id)
    rows = []
    for start in range(0, len(user_ids), 400):  # SQLite's bound-parameter limit
        rows.extend(_allocate_ids_generic(user_ids[start : start + 400], payload_id))
    return rows


def record(*events):
    """Stores change events for their recipients; delivers them live after commit.

    Call it once per transaction, as the service's last write: recipients' counters stay
    locked until commit, and one call takes them in a single ordered sweep (no deadlocks).
    """
    if not connection.in_atomic_block:
        with transaction.atomic():
            return record(*events)
    messages = []
    for event in events:
        user_ids = sorted({int(u) for u in event.user_ids})
        if not user_ids:
            continue
        data = dumps(event.data).decode()
        own_data = dumps(event.own_data).decode() if event.own_data is not None else None
        payload = EventPayload.objects.create(
            type=event.type, data=data, own_user_id=event.own_user_id, own_data=own_data
        )
        recipients = _allocate(user_ids, payload.pk)
        messages.append(bus.event_message(event.type, data, recipients, event.own_user_id, own_data))
    if messages:
        transaction.on_commit(lambda: bus.publish(messages), robust=True)


def publish_rollback_unsafe(user_ids, type, data):
    """Sends an ephemeral frame (no id, not stored) right away, whatever any transaction does."""
    bus.publish([bus.ephemeral_message(type, dumps(data).decode(), sorted({int(u) for u in user_ids}))])


def disconnect_user_on_commit(user_id, code):
    transaction.on_commit(lambda: bus.publish([bus.close_message(int(user_id), code)]), robust=True)
