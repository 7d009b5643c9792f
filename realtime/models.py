"""The durable event log behind resume without loss (contract 7.1).

Every change event is stored once (EventPayload) and referenced by one row per recipient
(UserEvent) carrying that user's next event id. Ids come from EventStream, a per-user counter
that is row-locked until the recording transaction commits, so a user's ids are gapless and
committed in id order: whoever has seen id N can ask for "after N" and never miss one.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class EventStream(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE)
    last_id = models.BigIntegerField(default=0)


class EventPayload(models.Model):
    type = models.CharField(max_length=32)
    # The frame's `data`, already encoded as JSON, so replay never re-encodes it.
    data = models.TextField()
    # One recipient may get a variant (the sender's own new_message carries its temp_id).
    own_user_id = models.BigIntegerField(null=True, blank=True)
    own_data = models.TextField(null=True, blank=True)
    # The message whose content the frame carries (new_message, message_updated): a removal
    # rewrites these payloads, so no replay returns what was removed (contract 15).
    message_id = models.BigIntegerField(null=True, blank=True)
    # Pruning finds the newest expired payload through this index.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            # A removal finds the payloads of its message; most payloads carry none.
            models.Index(
                fields=["message_id"], condition=models.Q(message_id__isnull=False), name="realtime_payload_message"
            ),
        ]


class UserEvent(models.Model):
    # Not indexed alone: (user, seq) below is the index of every lookup by user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    seq = models.BigIntegerField()
    # Indexed for pruning by payload id range. No constraint: a row is written in the statement
    # that writes its payload, and pruning deletes the rows before their payloads; the constraint's
    # check at commit, once per recipient, was about half of what a delivery row cost PostgreSQL.
    payload = models.ForeignKey(EventPayload, on_delete=models.CASCADE, db_constraint=False, related_name="+")

    class Meta:
        constraints = [
            # Also the index of replay: WHERE user_id = ? AND seq > ? ORDER BY seq.
            models.UniqueConstraint(fields=["user", "seq"], name="realtime_userevent_user_seq"),
        ]


class EventOutbox(models.Model):
    """A stored event that a worker still has to announce outside the sockets (a push notification).

    The statement that stores the event writes its row, so a committed event always has one,
    whatever happens to the process afterwards. A worker claims rows by moving `not_before`
    forward (a lease: the row of a worker that died is claimed again once it passes) and deletes
    a row once handled.
    """

    # No constraint: event pruning deletes payloads in bulk, and prunes these rows with them.
    payload = models.OneToOneField(
        EventPayload, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    not_before = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Device ids still owed this announcement after a partial failure; null: every device.
    remaining = models.JSONField(null=True, blank=True)

    class Meta:
        # The claim: WHERE not_before <= now ORDER BY not_before.
        indexes = [models.Index(fields=["not_before"], name="realtime_outbox_due")]
