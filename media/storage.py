"""URLs of stored files: public ones for avatars, signed expiring ones for uploaded media, and the
headers uploaded media is served with (by our view, or by object storage through the URL)."""

import time

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode

from imserver.urlbase import absolute_url
from media.models import Kind

# Kinds whose bytes a decoder has checked and that a client may render in place; anything else
# is served as an attachment (its content type comes from magic numbers, never from the client).
INLINE_KINDS = {Kind.IMAGE, Kind.AUDIO, Kind.VIDEO}
THUMBNAIL = "thumbnail"
ORIGINAL = "original"
_signer = signing.Signer(salt="media.url")


def public_url(name):
    """Absolute URL of a public file (avatars), None when there is none."""
    return absolute_url(default_storage.url(name)) if name else None


def served_as(media, variant):
    """(storage name, Content-Type, Content-Disposition) of one variant of an upload."""
    if variant == THUMBNAIL:
        content_type = "image/png" if media.thumbnail.endswith(".png") else "image/jpeg"
        return media.thumbnail, content_type, "inline"
    inline = media.kind in INLINE_KINDS
    return media.file, media.content_type, content_disposition_header(not inline, media.filename)


def _signature(media_id, variant, expires):
    return _signer.signature(f"{media_id}:{variant}:{expires}")


def signature_valid(media_id, variant, expires, signature):
    """True for an unexpired link we signed (also with a key in SECRET_KEY_FALLBACKS)."""
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 12 or int(expires) < time.time():
        return False
    try:
        _signer.unsign(f"{media_id}:{variant}:{expires}{_signer.sep}{signature}")
    except signing.BadSignature:
        return False
    return True


def _expiry():
    """Now + MEDIA_URL_TTL rounded up to a step of at most an hour, so that the same file keeps the
    same URL for a while and clients caching by URL hit their cache."""
    ttl = int(settings.MEDIA_URL_TTL.total_seconds())
    step = max(1, min(3600, ttl))
    return -(-(int(time.time()) + ttl) // step) * step


def media_url(media, variant=ORIGINAL):
    """Absolute URL that serves one variant of an upload without an auth header until it expires:
    a presigned object storage URL, or our signed /media/f/ view on local storage."""
    name, content_type, disposition = served_as(media, variant)
    if not name:
        return None
    if settings.MEDIA_STORAGE == "s3":
        return default_storage.url(
            name,
            expire=int(settings.MEDIA_URL_TTL.total_seconds()),
            parameters={"ResponseContentType": content_type, "ResponseContentDisposition": disposition},
        )
    route = "media-thumbnail" if variant == THUMBNAIL else "media-file"
    expires = _expiry()
    query = urlencode({"exp": expires, "sig": _signature(media.public_id, variant, expires)})
    return absolute_url(f"{reverse(route, kwargs={'media_id': media.pk})}?{query}")
