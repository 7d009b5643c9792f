from collections.abc import Callable
from datetime import timedelta

import orjson
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from imserver.api import dumps
from imserver.batches import in_batches
from realtime.models import EventOutbox, EventPayload, EventStream, UserEvent


def events_prune(*, older_than: timedelta | None = None, batch: int = 10_000) -> tuple[int, int]:
    """Deletes events older than the retention window; returns (user events, payloads) deleted.

    Works in id ranges (payload ids grow with time), a batch per transaction, so it never holds
    long locks. A client whose cursor predates what is left gets 410 and refetches.
    """
    cutoff = timezone.now() - (settings.EVENT_RETENTION if older_than is None else older_than)
    newest_expired = (
        EventPayload.objects.filter(created_at__lt=cutoff).order_by("-created_at").values_list("pk", flat=True).first()
    )
    if newest_expired is None:
        return 0, 0
    user_events = payloads = 0
    expired = EventPayload.objects.filter(pk__lte=newest_expired).order_by("pk").values_list("pk", flat=True)
    for ids in in_batches(expired, size=batch):
        user_events += UserEvent.objects.filter(payload_id__in=ids)._raw_delete(UserEvent.objects.db)
        EventOutbox.objects.filter(payload_id__in=ids)._raw_delete(EventOutbox.objects.db)
        payloads += EventPayload.objects.filter(pk__in=ids)._raw_delete(EventPayload.objects.db)
    return user_events, payloads


def message_events_rewrite(*, message_ids: list[int], rewrite: Callable[[str, dict], dict]) -> int:
    """Rewrites the stored frames that carry these messages (Event.message_id), both variants,
    with rewrite(type, data) -> new data; returns how many payloads changed. Replays (/v1/sync,
    /ws?since=) and pushes not yet sent read the rewritten frames: how a removal reaches the
    event log (chat.services.message_remove). Call it inside the transaction of the change."""
    payloads = list(EventPayload.objects.filter(message_id__in=message_ids).only("type", "data", "own_data"))
    for payload in payloads:
        payload.data = dumps(rewrite(payload.type, orjson.loads(payload.data))).decode()
        if payload.own_data is not None:
            payload.own_data = dumps(rewrite(payload.type, orjson.loads(payload.own_data))).decode()
    EventPayload.objects.bulk_update(payloads, ["data", "own_data"])
    return len(payloads)


def erase_user(user: AbstractBaseUser) -> None:
    """An erased account's event log (privacy.services.user_delete); the payloads others got stay."""
    UserEvent.objects.filter(user=user).delete()
    EventStream.objects.filter(user=user).delete()
