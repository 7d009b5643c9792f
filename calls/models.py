from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Call(models.Model):
    """A one-to-one audio or video call. The server only carries the signaling (SDP offer and
    answer, relayed ICE candidates); the media flows between the devices (or through TURN)."""

    class Type(models.TextChoices):
        AUDIO = "audio"
        VIDEO = "video"

    class Status(models.TextChoices):
        RINGING = "ringing"
        CONNECTED = "connected"
        ENDED = "ended"
        REJECTED = "rejected"
        CANCELLED = "cancelled"
        MISSED = "missed"

    LIVE = (Status.RINGING, Status.CONNECTED)

    # Users are protected like message senders: a user's call history is kept. The history
    # indexes below start with caller and callee, so the foreign keys need none of their own.
    caller = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    callee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    # The private conversation of the pair, where the finished call leaves its record.
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=8, choices=Type.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RINGING)
    offer_sdp = models.TextField()
    answer_sdp = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    connected_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Still ringing at this time: missed.
    ring_deadline = models.DateTimeField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # Call history (calls made or received, newest first): one range per column, OR-ed.
            models.Index(fields=["caller", "-created_at"], name="calls_call_caller_recent"),
            models.Index(fields=["callee", "-created_at"], name="calls_call_callee_recent"),
            # "Is either side already in a call?" on every call start. Only live calls (ringing,
            # connected) are indexed, so these stay tiny however long the history grows.
            models.Index(
                fields=["caller"], condition=Q(status__in=["ringing", "connected"]), name="calls_call_caller_live"
            ),
            models.Index(
                fields=["callee"], condition=Q(status__in=["ringing", "connected"]), name="calls_call_callee_live"
            ),
            # The expiry job, every second in every process: ringing calls past their deadline.
            models.Index(fields=["ring_deadline"], condition=Q(status="ringing"), name="calls_call_ring_deadline"),
        ]

    def __str__(self):
        return f"call{self.pk} ({self.caller_id} -> {self.callee_id}, {self.status})"

    @property
    def duration(self):
        """Seconds from connection to end once finished (0 if never connected); None while live."""
        if self.status in self.LIVE:
            return None
        if self.connected_at is None:
            return 0
        return int((self.ended_at - self.connected_at).total_seconds())
