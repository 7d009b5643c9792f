from django.conf import settings
from django.db import transaction
from django.utils import timezone

from realtime.models import EventOutbox, EventPayload, EventStream, UserEvent


def events_prune(*, older_than=None, batch=10_000):
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
    while True:
        with transaction.atomic():
            ids = list(
                EventPayload.objects.filter(pk__lte=newest_expired).order_by("pk").values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return user_events, payloads
            user_events += UserEvent.objects.filter(payload_id__in=ids)._raw_delete(UserEvent.objects.db)
            EventOutbox.objects.filter(payload_id__in=ids)._raw_delete(EventOutbox.objects.db)
            payloads += EventPayload.objects.filter(pk__in=ids)._raw_delete(EventPayload.objects.db)


def events_erase_user(user):
    """An erased account's event log (accounts.user_delete); the payloads others got stay."""
    UserEvent.objects.filter(user=user).delete()
    EventStream.objects.filter(user=user).delete()
