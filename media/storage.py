"""URLs of stored files."""

from django.core.files.storage import default_storage

from imserver.urlbase import absolute_url


def public_url(name):
    """Absolute URL of a public file (avatars), None when there is none."""
    return absolute_url(default_storage.url(name)) if name else None
