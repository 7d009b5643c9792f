from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from imserver.api import format_id


class Kind(models.TextChoices):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"


class Media(models.Model):
    """An uploaded file: what its bytes turned out to be, and where it is stored.

    The public id is "media<pk>". An upload is an orphan until a message or an avatar uses it
    (`attached_at`); `manage.py purge_media` deletes orphans older than MEDIA_ORPHAN_TTL.
    Deleting a row deletes its files (media.signals). An erased account keeps its uploads that
    messages carry (the messages stay, from "Deleted user"); its orphans go with purge_media.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="media")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Storage names: random, under media/<yyyy>/<mm>/, with an extension from the sniffed type.
    file = models.CharField(max_length=255)
    thumbnail = models.CharField(max_length=255, blank=True)  # images and video posters
    # Sniffed from the bytes (never the client's word); application/octet-stream when unknown.
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()  # bytes as stored (images are re-encoded)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)  # seconds, audio and video
    filename = models.CharField(max_length=255)  # the client's name, sanitized, for display only
    created_at = models.DateTimeField(default=timezone.now)
    attached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Lookups are by primary key (then checked against the owner) and by owner through the
        # foreign key's own index (deleting an account). The only other query is purge_media's
        # scan for old orphans: a partial index holds just the unattached rows, so it stays small
        # however many attached uploads pile up.
        indexes = [
            models.Index(fields=["created_at"], condition=Q(attached_at__isnull=True), name="media_orphans_by_age"),
        ]

    def __str__(self):
        return self.public_id

    @property
    def public_id(self):
        return format_id("media", self.pk)
