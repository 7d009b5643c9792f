"""The push pipeline (contract 12): outbox rows in, pushes out.

Services never push. The event log writes an outbox row for every event of a pushed type in the
event's own transaction (`realtime.events.outbox_register`); a sender claims due rows with a
lease (SKIP LOCKED on PostgreSQL, so any number of senders share the work), turns each into one
notification per recipient device that has a registration and no open socket, sends them
concurrently, and then deletes the row, or keeps the devices that failed for a retry with
backoff. A sender that dies mid-batch leaves its rows to be claimed again when the lease
passes; the resend carries the same collapse ids, so a phone shows it once.
"""

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Device
from chat.models import Membership, Notify
from chat.selectors import muted_now, unread_summaries
from contacts.models import Preview, PrivacySettings
from contacts.selectors import not_refusing_ids
from imserver import metrics
from imserver.api import parse_id
from presence import registry as presence
from push.notifications import Kind, Notification, Outcome, Result, Target
from realtime.db import in_db_thread
from realtime.models import EventOutbox, EventPayload, UserEvent

logger = logging.getLogger(__name__)

PUSHED_TYPES = ("new_message", "incoming_call", "call_status", "conversation_read", "message_status")
LEASE = timedelta(seconds=30)
BACKOFF_SECONDS = (2, 10, 60, 300)  # after the 1st, 2nd, ... failed attempt; then it is dropped
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
PREVIEW_CHARS = 200
MEDIA_PREVIEW = {"image": "[image]", "video": "[video]", "audio": "[audio]", "file": "[file]"}
CONCURRENCY = 100
# The state each outcome counts as in imserver_push_jobs_total (a dead token is a failed push).
PUSH_STATES = {Result.SENT: "sent", Result.RETRY: "retried", Result.INVALID_TOKEN: "failed", Result.FAILED: "failed"}


@dataclass(frozen=True)
class Delivery:
    payload_id: int
    target: Target
    notification: Notification


def claim(limit: int) -> list[EventOutbox]:
    """Takes up to `limit` due outbox rows for this sender for the length of a lease."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            EventOutbox.objects.select_for_update(skip_locked=True)
            .filter(not_before__lte=now)
            .order_by("not_before", "payload_id")
            .values_list("payload_id", flat=True)[:limit]
        )
        if not due:
            return []
        EventOutbox.objects.filter(payload_id__in=due).update(not_before=now + LEASE, attempts=F("attempts") + 1)
        return list(EventOutbox.objects.filter(payload_id__in=due).order_by("payload_id"))


def _pushed_to(type: str, data: dict, user_id: int) -> bool:
    if type == "new_message":
        # Never the sender's own devices, nor a message removed before its push left (its stored
        # frame is the tombstone by then; the removal's message_status retracts it anyway).
        return str(user_id) != data["sender_id"] and data["status"] != "removed"
    if type == "message_status":
        return data["status"] == "removed"  # a retraction; reads and deliveries are not pushed
    if type == "call_status":
        return data["status"] != "ringing"  # the call stopped ringing: the devices stop too
    return True


def _message_text(data: dict) -> str:
    if data["type"] == "text":
        return data["content"][:PREVIEW_CHARS]
    return (data.get("caption") or MEDIA_PREVIEW.get(data["type"], "")).strip()[:PREVIEW_CHARS]


def _notification(type: str, data: dict, event_id: int, badge: int, preview: str) -> Notification:
    meta = {"type": type, "event_id": str(event_id), "badge": str(badge)}
    for key in ("conversation_id", "message_id", "call_id"):
        if data.get(key):
            meta[key] = data[key]
    if type == "new_message":
        return Notification(
            kind=Kind.MESSAGE,
            data=meta,
            badge=badge,
            title=data["sender_name"] if preview in ("full", "sender") else None,
            body=_message_text(data) if preview == "full" else None,
            thread_id=data["conversation_id"],
            collapse_id=data["message_id"],
        )
    if type == "incoming_call":
        created_at = parse_datetime(data["created_at"])
        return Notification(
            kind=Kind.CALL,
            data=meta,
            badge=badge,
            title=data["caller_name"] if preview in ("full", "sender") else None,
            collapse_id=data["call_id"],
            expires_at=created_at + timedelta(seconds=settings.CALL_RING_TIMEOUT),
        )
    return Notification(
        kind=Kind.SILENT,
        data=meta,
        badge=badge,
        collapse_id=data.get("message_id") or data.get("call_id"),
    )


def _target(device: Device) -> Target:
    return Target(
        device_id=device.pk,
        provider=device.push_provider,
        token=device.push_token,
        voip_token=device.voip_token or None,
        call_push=device.call_push,
        sandbox=device.push_sandbox,
    )


def plan(entries: list[EventOutbox]) -> list[Delivery]:
    """The pushes the claimed rows owe, in a few queries whatever their number."""
    payloads = {p.pk: p for p in EventPayload.objects.filter(pk__in=[e.payload_id for e in entries])}
    recipients = {}  # payload id -> [(user id, event id)]
    for payload_id, user_id, seq in UserEvent.objects.filter(payload_id__in=payloads).values_list(
        "payload_id", "user_id", "seq"
    ):
        recipients.setdefault(payload_id, []).append((user_id, seq))
    decoded = {pk: json.loads(p.data) for pk, p in payloads.items()}
    wanted = {
        pk: [(u, seq) for u, seq in recipients.get(pk, ()) if _pushed_to(payloads[pk].type, decoded[pk], u)]
        for pk in payloads
    }
    user_ids = {u for pairs in wanted.values() for u, _ in pairs}
    if not user_ids:
        return []
    devices = {}
    for device in Device.objects.filter(user_id__in=user_ids).exclude(push_token=""):
        devices.setdefault(device.user_id, []).append(device)
    live = presence.live_device_ids(user_ids)
    badges = {user_id: summary["badge"] for user_id, summary in unread_summaries(sorted(user_ids)).items()}
    previews = dict(PrivacySettings.objects.filter(user_id__in=user_ids).values_list("user_id", "notification_preview"))
    silenced = _silenced(payloads, decoded, user_ids)
    refused = _refused_mentions(payloads, decoded, silenced)
    deliveries = []
    for entry in entries:
        payload = payloads.get(entry.payload_id)
        if payload is None:  # pruned meanwhile
            continue
        remaining = set(entry.remaining) if entry.remaining is not None else None
        for user_id, seq in wanted[payload.pk]:
            if payload.type == "new_message" and _silenced_for(silenced, refused, decoded[payload.pk], user_id):
                continue
            for device in devices.get(user_id, ()):
                if device.pk in live or (remaining is not None and device.pk not in remaining):
                    continue
                preview = previews.get(user_id, Preview.FULL)
                notification = _notification(payload.type, decoded[payload.pk], seq, badges[user_id], preview)
                deliveries.append(Delivery(payload.pk, _target(device), notification))
    return deliveries


def _silenced(payloads, decoded, user_ids) -> dict[tuple[int, str], str]:
    """{(user id, conversation id): notify level} of the conversations whose new messages are not
    all pushed: muted now, or a notify level other than "all" (contract 17)."""
    conversation_ids = {
        parse_id("c", decoded[pk]["conversation_id"]) for pk, p in payloads.items() if p.type == "new_message"
    }
    if not conversation_ids:
        return {}
    rows = (
        Membership.objects.filter(user_id__in=user_ids, conversation_id__in=conversation_ids)
        .filter(muted_now() | ~Q(notify=Notify.ALL))
        .values_list("user_id", "conversation_id", "notify")
    )
    return {(user_id, f"c{conversation_id}"): notify for user_id, conversation_id, notify in rows}


def _mentions(data: dict, user_id: int) -> bool:
    return data.get("mentions_all", False) or str(user_id) in data.get("mentions", ())


def _refused_mentions(payloads, decoded, silenced) -> set[tuple[int, int]]:
    """(user id, sender id) pairs where a mention does not reach the user because they block the
    sender (contract 16), among the silenced users' mentions only: one query per sender."""
    mentioned = {}
    for pk, data in decoded.items():
        if payloads[pk].type == "new_message":
            for user_id, conversation_id in silenced:
                if conversation_id == data["conversation_id"] and _mentions(data, user_id):
                    mentioned.setdefault(int(data["sender_id"]), set()).add(user_id)
    return {
        (user_id, sender_id)
        for sender_id, users in mentioned.items()
        for user_id in users - not_refusing_ids(actor_id=sender_id, user_ids=users)
    }


def _silenced_for(silenced, refused, data: dict, user_id: int) -> bool:
    """Whether this new message is not pushed to this user: their conversation is muted or not
    on "all", and the message does not mention them (a mention pushes through a mute and through
    "mentions", contract 18; never through "none", nor from a sender they block)."""
    notify = silenced.get((user_id, data["conversation_id"]))
    if notify is None:
        return False
    if notify == Notify.NONE or (user_id, int(data["sender_id"])) in refused:
        return True
    return not _mentions(data, user_id)


def finish(entries: list[EventOutbox], deliveries: list[Delivery], outcomes: list[Outcome]) -> None:
    """Deletes handled rows and dead tokens; reschedules the devices that failed for a retry."""
    failed = {}  # payload id -> device ids to retry
    retry_after = {}
    dead_tokens = []
    for delivery, outcome in zip(deliveries, outcomes, strict=True):
        metrics.PUSH_JOBS.labels(PUSH_STATES[outcome.result]).inc()
        if outcome.result is Result.RETRY:
            failed.setdefault(delivery.payload_id, set()).add(delivery.target.device_id)
            if outcome.retry_after:
                retry_after[delivery.payload_id] = max(retry_after.get(delivery.payload_id, 0), outcome.retry_after)
        elif outcome.result is Result.INVALID_TOKEN:
            dead_tokens.append((delivery.target.device_id, outcome.invalid_token))
        elif outcome.result is Result.FAILED:
            logger.warning("push to device %s refused: %s", delivery.target.device_id, outcome.detail)
    now = timezone.now()
    with transaction.atomic():
        for device_id, token in dead_tokens:
            _forget_token(device_id, token)
        done = []
        for entry in entries:
            devices = failed.get(entry.payload_id)
            if not devices:
                done.append(entry.payload_id)
            elif entry.attempts >= MAX_ATTEMPTS:
                logger.error("push of event %s dropped after %s attempts", entry.payload_id, entry.attempts)
                done.append(entry.payload_id)
            else:
                delay = max(BACKOFF_SECONDS[entry.attempts - 1], retry_after.get(entry.payload_id, 0))
                EventOutbox.objects.filter(payload_id=entry.payload_id).update(
                    remaining=sorted(devices), not_before=now + timedelta(seconds=delay)
                )
        EventOutbox.objects.filter(payload_id__in=done).delete()


def _forget_token(device_id: int, token: str | None) -> None:
    """A provider said this token is dead: the registration goes (the VoIP token alone if it was)."""
    device = Device.objects.filter(pk=device_id).first()
    if device is None:
        return
    if token and token == device.voip_token and token != device.push_token:
        device.voip_token, device.voip_token_hash = "", None
    else:
        device.push_provider, device.push_token, device.push_token_hash = "", "", None
        device.voip_token, device.voip_token_hash = "", None
    device.save(update_fields=["push_provider", "push_token", "push_token_hash", "voip_token", "voip_token_hash"])


class Sender:
    """Sends what the outbox owes, with one client per configured provider (kept open)."""

    def __init__(self, clients: dict):
        self.clients = clients
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def _send(self, delivery: Delivery) -> Outcome:
        client = self.clients.get(delivery.target.provider)
        if client is None:  # credentials removed since the device registered
            return Outcome(Result.FAILED, detail=f"{delivery.target.provider} is not configured")
        async with self._slots:
            return await client.send(delivery.notification, delivery.target)

    async def send_due(self, limit: int = 500) -> int:
        """One round: claims due rows, sends their pushes; returns how many pushes were tried."""
        entries = await in_db_thread(claim)(limit)
        if not entries:
            return 0
        deliveries = await in_db_thread(plan)(entries)
        outcomes = await asyncio.gather(*(self._send(d) for d in deliveries))
        await in_db_thread(finish)(entries, deliveries, list(outcomes))
        return len(deliveries)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
