from django.db import models
from django.utils import timezone


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` a caller used (contract 21): claimed while its request runs, then the
    stored answer replayed to repeats. Written only by imserver/idempotency.py."""

    # "user:<id>", or "anonymous:<address>" for requests without a token (register, login). A
    # string rather than a foreign key: the platform layer sits below the accounts app, and the
    # daily prune removes a gone user's keys within 24 hours anyway.
    scope = models.CharField(max_length=80)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    # Identifies the holder while the request runs; a claim whose holder died (locked_until passed)
    # is taken over by the next repeat, which then runs the request itself.
    claim = models.UUIDField()
    locked_until = models.DateTimeField(null=True)
    # Set, with the answer, in the transaction of the request's own effects.
    fingerprint = models.CharField(max_length=64, blank=True)
    status = models.PositiveSmallIntegerField(null=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_per_scope")]
        # The daily prune deletes by age.
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created")]
