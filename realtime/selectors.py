from django.db.models import Min

from imserver.api import MAX_ID_DIGITS
from realtime.models import EventStream, UserEvent


class ResumeError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def stream_position(*, user_id: int) -> int:
    return EventStream.objects.filter(user_id=user_id).values_list("last_id", flat=True).first() or 0


def resume_position(*, user_id: int, since: str | None) -> int:
    """The event id a connection resumes after: `since` checked (400 malformed or not issued
    to this user, 410 older than the retention window), or the current position when None."""
    last = stream_position(user_id=user_id)
    if since is None:
        return last
    if not isinstance(since, str) or not since.isascii() or not since.isdigit() or len(since) > MAX_ID_DIGITS:
        raise ResumeError(400, "since must be an event id")
    since = int(since)
    if since > last:
        raise ResumeError(400, "since is not an event id of this user")
    if since < last:
        oldest = UserEvent.objects.filter(user_id=user_id).aggregate(oldest=Min("seq"))["oldest"]
        if oldest is None or oldest > since + 1:
            raise ResumeError(410, "Events after since are past the retention window; refetch conversations")
    return since


def events_after(*, user_id: int, after: int, upto: int | None = None, limit: int = 500) -> list[tuple]:
    """[(event id, type, data JSON)] of the user's events after `after` (up to `upto`), in order."""
    rows = UserEvent.objects.filter(user_id=user_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    rows = rows.order_by("seq").values_list(
        "seq", "payload__type", "payload__data", "payload__own_user_id", "payload__own_data"
    )[:limit]
    return [
        (seq, type, own_data if own_data is not None and own_user_id == user_id else data)
        for seq, type, data, own_user_id, own_data in rows
    ]
