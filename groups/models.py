from django.db import models
from django.utils import timezone

from chat.models import Conversation
from imserver.namesearch import NameSearchField, update_fields_with_document


class Group(models.Model):
    """A group chat's profile. Its members and their roles are the memberships of its
    conversation (chat.Membership); the two are created and deleted together."""

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="group")
    name = models.CharField(max_length=64)
    # Storage name of the re-encoded avatar image ("" for none).
    avatar = models.CharField(max_length=255, blank=True)
    announcement = models.TextField(max_length=2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # What the admin's group search finds a group by (imserver/namesearch.py).
    search_document = NameSearchField(sources=("name",))

    def __str__(self):
        return self.name

    def save(self, *args, update_fields=None, **kwargs):
        super().save(*args, update_fields=update_fields_with_document(Group, update_fields), **kwargs)
