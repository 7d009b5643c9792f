"""Stored files go with their row, however it is deleted (purge_media, a moderator removing its
message, the admin): once the deletion commits, so that a rolled-back delete keeps its files."""

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from media.models import Media


@receiver(post_delete, sender=Media)
def delete_stored_files(sender, instance, using, **kwargs):
    names = [name for name in (instance.file, instance.thumbnail) if name]
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names], using=using, robust=True)
