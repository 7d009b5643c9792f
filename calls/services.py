"""Call writes. Every status change goes through TRANSITIONS (the state machine) in _transition,
which records `call_status` for both parties in the same transaction; a finished call leaves its
record in the pair's private conversation."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError

from accounts.models import User
from calls import selectors
from calls.models import Call
from calls.serializers import call_status_data, incoming_call_data
from chat.services import message_store_call, new_message_event, private_conversation_open
from contacts.selectors import call_refusal
from imserver.api import Conflict, PayloadTooLarge, format_id
from imserver.ratelimit import check_rate
from realtime import events

Status = Call.Status

# Largest SDP offer or answer, or ICE candidate (contract 9: 413 beyond).
MAX_SIGNALING_BYTES = 64 * 1024

CALLER, CALLEE, TIMER = "caller", "callee", "ring timer"

# The state machine: (action, who acts) -> {status it applies to: status it leads to}. No entry
# for the action and party: 403 (the caller accepting); none for the call's status: 409
# (accepting twice, accepting an ended call).
TRANSITIONS = {
    ("accept", CALLEE): {Status.RINGING: Status.CONNECTED},
    ("reject", CALLEE): {Status.RINGING: Status.REJECTED},
    ("end", CALLER): {Status.RINGING: Status.CANCELLED, Status.CONNECTED: Status.ENDED},
    # The callee hanging up a ringing call declines it, as the reject button does.
    ("end", CALLEE): {Status.RINGING: Status.REJECTED, Status.CONNECTED: Status.ENDED},
    ("expire", TIMER): {Status.RINGING: Status.MISSED},
}


def check_signaling_size(value: str, field: str) -> None:
    if len(value.encode()) > MAX_SIGNALING_BYTES:
        raise PayloadTooLarge(f"{field} is larger than {MAX_SIGNALING_BYTES // 1024} KiB")


@transaction.atomic
def call_start(*, caller: User, target_user_id: int | None, type: str, offer_sdp: str) -> Call:
    """Rings every device of the target: a call that stays ringing until it is answered,
    declined, cancelled, or missed after CALL_RING_TIMEOUT (whether the target is online or not)."""
    check_signaling_size(offer_sdp, "offer_sdp")
    if target_user_id == caller.pk:
        raise ValidationError({"target_id": ["You cannot call yourself."]})
    refusal = call_refusal(caller_id=caller.pk, callee_id=target_user_id)
    if refusal:  # a block either way or the callee's who_can_call: no incoming_call, so no push
        raise PermissionDenied(refusal)
    conversation, _ = private_conversation_open(user=caller, target_user_id=target_user_id, check_message=False)
    # Both users' rows, locked in id order: starts involving either user queue here, so each sees
    # the calls committed before it and nobody ends up in two live calls. (NO KEY: rows that
    # merely reference a user, such as new messages, are not held up.)
    users = {
        user.pk: user
        for user in User.objects.select_for_update(no_key=True)
        .filter(pk__in=[caller.pk, target_user_id])
        .order_by("pk")
    }
    if selectors.in_live_call(caller.pk):
        raise Conflict("You are already in a call")
    if selectors.in_live_call(target_user_id):
        raise Conflict("The user is in another call")
    now = timezone.now()
    call = Call.objects.create(
        caller=users[caller.pk],
        callee=users[target_user_id],
        conversation=conversation,
        type=type,
        offer_sdp=offer_sdp,
        created_at=now,
        updated_at=now,
        ring_deadline=now + timedelta(seconds=settings.CALL_RING_TIMEOUT),
    )
    events.record(events.Event([call.callee_id], "incoming_call", incoming_call_data(call)))
    return call


@transaction.atomic
def call_accept(*, user: User, call_id: int | None, answer_sdp: str) -> Call:
    check_signaling_size(answer_sdp, "answer_sdp")
    call = selectors.call_for_party(user=user, call_id=call_id, lock=True)
    return _transition(call, "accept", _party(call, user), answer_sdp=answer_sdp)


@transaction.atomic
def call_reject(*, user: User, call_id: int | None) -> Call:
    call = selectors.call_for_party(user=user, call_id=call_id, lock=True)
    return _transition(call, "reject", _party(call, user))


@transaction.atomic
def call_end(*, user: User, call_id: int | None) -> Call:
    call = selectors.call_for_party(user=user, call_id=call_id, lock=True)
    return _transition(call, "end", _party(call, user))


def calls_expire() -> int:
    """Makes the calls still ringing past their deadline missed; returns how many.

    Every server process runs this every second (calls.jobs). Each call is claimed in its own
    transaction with SKIP LOCKED, so concurrent runs take different calls and each call is missed
    exactly once; a call locked by an accept or reject right now is left to it.
    """
    due = Call.objects.filter(status=Status.RINGING, ring_deadline__lte=timezone.now())
    expired = 0
    while due.exists():
        with transaction.atomic():
            claimed = due.select_for_update(skip_locked=True, of=("self",)).select_related("caller", "callee")
            call = claimed.order_by("ring_deadline", "pk").first()
            if call is None:  # the rest are locked: another process or a callee has them
                break
            _transition(call, "expire", TIMER)
        expired += 1
    return expired


def call_ice_candidate_relay(*, user: User, call_id: int | None, candidate: str, **fields: object) -> None:
    """Relays an ICE candidate to the other party's devices as is, plus `from_user_id`.

    Ephemeral: nothing is stored, and a candidate lost with a socket is simply gathered again.
    Allowed while the call is live (the caller trickles candidates while it rings), at most
    RATE_LIMITS["ice"] per call and sender: every candidate is copied to each of the other
    party's sockets.
    """
    check_signaling_size(candidate, "candidate")
    call = selectors.call_for_party(user=user, call_id=call_id)
    if call.status not in Call.LIVE:
        raise Conflict(f"The call is {call.status}")
    if wait := check_rate("ice", f"call:{call.pk}:user:{user.pk}"):
        raise Throttled(wait)
    other = call.callee_id if _party(call, user) == CALLER else call.caller_id
    data = {"call_id": format_id("call", call.pk), "candidate": candidate, **fields, "from_user_id": str(user.pk)}
    events.publish_rollback_unsafe([other], "ice_candidate", data)


def _party(call, user):
    return CALLER if user.pk == call.caller_id else CALLEE


def _transition(call, action, party, **changes):
    """Moves a locked call along TRANSITIONS, records a finished call in the conversation, and
    tells both parties.

    Locks in the order every writer takes them (call, then conversation, then the event counters
    in record()), so a transition and a send in the same conversation cannot deadlock."""
    moves = TRANSITIONS.get((action, party))
    if moves is None:
        raise PermissionDenied(f"The {party} cannot {action} this call")
    status = moves.get(call.status)
    if status is None:
        raise Conflict(f"Cannot {action} a call that is {call.status}")
    now = timezone.now()
    call.status = status
    call.updated_at = now
    if status == Status.CONNECTED:
        call.connected_at = now
    if status not in Call.LIVE:
        call.ended_at = now
    for field, value in changes.items():
        setattr(call, field, value)
    call.save(update_fields=["status", "updated_at", "connected_at", "ended_at", *changes])
    recorded = [call_status_event(call)]
    if status not in Call.LIVE:
        message = message_store_call(
            caller=call.caller,
            conversation_id=call.conversation_id,
            call_id=format_id("call", call.pk),
            call_type=call.type,
            status=call.status,
            duration=call.duration,
        )
        recorded.append(new_message_event(message))
    events.record(*recorded)
    return call


def call_status_event(call: Call) -> events.Event:
    data = call_status_data(call)
    # On "connected" the caller's devices also get the answer to set as remote description; the
    # callee's other devices just stop ringing.
    answered = call.status == Status.CONNECTED
    return events.Event(
        [call.caller_id, call.callee_id],
        "call_status",
        data,
        own_user_id=call.caller_id if answered else None,
        own_data={**data, "answer_sdp": call.answer_sdp} if answered else None,
    )
