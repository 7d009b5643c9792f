"""Reads scoped to the caller: a call the user is not a party to does not exist (404)."""

from datetime import datetime

from django.db.models import Q
from rest_framework.exceptions import NotFound

from accounts.models import User
from calls.models import Call
from imserver.pagination import paginate


def _calls_of(user_id):
    return Call.objects.filter(Q(caller_id=user_id) | Q(callee_id=user_id))


def call_for_party(*, user: User, call_id: int | None, lock: bool = False) -> Call:
    """The call if user is its caller or callee, else 404 ("missing or not yours").

    lock: the call row (not the joined users) stays locked until commit, so one change at a time
    is decided on the call's current status.
    """
    calls = _calls_of(user.pk).select_related("caller", "callee")
    if lock:
        calls = calls.select_for_update(of=("self",))
    call = calls.filter(pk=call_id).first()
    if call is None:
        raise NotFound("Call not found")
    return call


def call_history(*, user: User, limit: int, offset: int) -> tuple[int, list[Call]]:
    """(total, calls) the user made or received, newest first."""
    calls = _calls_of(user.pk).select_related("caller", "callee")
    return paginate(calls, order_by=("-created_at", "-pk"), limit=limit, offset=offset)


def in_live_call(user_id: int) -> bool:
    """Whether the user is ringing or talking (as caller or callee) right now."""
    return _calls_of(user_id).filter(status__in=Call.LIVE).exists()


def export_sections(user: User) -> dict:
    """Calls' part of a data export (privacy.services.user_export)."""
    return {"calls": _calls(user)}


def _calls(user: User) -> list[dict]:
    return [
        {
            "call_id": f"call{call.pk}",
            "caller_id": str(call.caller_id),
            "callee_id": str(call.callee_id),
            "type": call.type,
            "status": call.status,
            "duration": call.duration,
            "created_at": call.created_at,
        }
        for call in Call.objects.filter(Q(caller=user) | Q(callee=user)).order_by("pk")
    ]


def calls_since(start: datetime) -> int:
    return Call.objects.filter(created_at__gte=start).count()
