"""What a push says, independent of the provider that carries it (contract section 12).

The pipeline builds one `Notification` per recipient device; `push.fcm` and `push.apns` render it
into their own wire formats.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    MESSAGE = "message"  # an alert for a new message (high priority)
    CALL = "call"  # an incoming call (VoIP push where the device asked for it)
    SILENT = "silent"  # shows nothing: a badge update, a retraction, a call that stopped ringing


@dataclass(frozen=True)
class Notification:
    kind: Kind
    # {type, event_id, conversation_id?, message_id?, call_id?, badge}, every value a string (FCM
    # data values are strings; APNs carries the same keys beside `aps`).
    data: dict[str, str]
    badge: int
    title: str | None = None  # the sender's name; None where the preview setting hides it
    body: str | None = None  # the text; None where the preview setting hides it
    thread_id: str | None = None  # the conversation id: groups the notifications on the phone
    collapse_id: str | None = None  # the message or call id: a resend replaces, never duplicates
    expires_at: datetime | None = None  # a call push is useless after its ring deadline


@dataclass(frozen=True)
class Target:
    """One device's push registration."""

    device_id: int
    provider: str  # "fcm" | "apns"
    token: str
    voip_token: str | None = None
    call_push: str = "voip"  # "voip" | "alert"
    sandbox: bool = False


class Result(StrEnum):
    SENT = "sent"
    INVALID_TOKEN = "invalid_token"  # the provider says the token is dead: delete the registration
    RETRY = "retry"  # 429 or 5xx: try again later
    FAILED = "failed"  # refused for another reason: retrying will not help


@dataclass(frozen=True)
class Outcome:
    result: Result
    retry_after: float | None = None  # seconds, when the provider said (Retry-After)
    detail: str = ""
    invalid_token: str | None = field(default=None)  # which token died (an APNs VoIP token or the main one)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (the date form is rare from push providers)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
