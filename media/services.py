"""Media writes: storing an upload, handing it to a message or an avatar, purging orphans."""

import unicodedata
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from imserver.api import PayloadTooLarge, parse_id
from imserver.batches import in_batches
from media.content import inspect_upload
from media.images import decode_data_uri, store_avatar
from media.models import Kind, Media

MAX_FILENAME = 255
THUMBNAIL_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
PURGE_BATCH = 500


def clean_filename(name: str | None, fallback: str) -> str:
    """The client's file name fit for display and Content-Disposition: no path, no control or
    invisible formatting characters (a right-to-left override makes 'gpj.exe' look like
    'exe.jpg'), at most 255 characters with the extension kept."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if not dot or len(extension) > 16:
            stem, extension = name, ""
        name = stem[: MAX_FILENAME - len(extension) - len(dot)].rstrip() + dot + extension
    return name or fallback


def _save(name, content, content_type):
    content.content_type = content_type  # what object storage will serve it as
    return default_storage.save(name, content)


def _check_quota(owner: AbstractBaseUser, size: int) -> None:
    """413 unless the owner's stored uploads (attached or not) plus `size` fit MEDIA_QUOTA_BYTES."""
    used = Media.objects.filter(owner=owner).aggregate(used=Sum("size"))["used"] or 0
    if used + size > settings.MEDIA_QUOTA_BYTES:
        raise PayloadTooLarge(
            f"Storage quota exceeded: {used} of {settings.MEDIA_QUOTA_BYTES} bytes used, this upload needs {size}"
        )


def media_upload(*, owner: AbstractBaseUser, kind: str, uploaded_file: UploadedFile) -> Media:
    """Checks an upload against its declared kind (413, 415, 400) and the owner's quota (413) and
    stores it: images re-encoded without metadata, everything else as it came, under a random name."""
    limit = settings.MEDIA_MAX_BYTES[kind]
    if uploaded_file.size > limit:
        raise PayloadTooLarge(f"{kind} uploads are limited to {limit} bytes")
    _check_quota(owner, uploaded_file.size)  # before the work of decoding it
    inspected = inspect_upload(kind=kind, file=uploaded_file)
    stem = f"media/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"
    content = uploaded_file if inspected.data is None else ContentFile(inspected.data)
    stored = []
    try:
        stored.append(_save(f"{stem}.{inspected.extension}", content, inspected.content_type))
        if inspected.thumbnail:
            data, extension = inspected.thumbnail
            stored.append(_save(f"{stem}_thumb.{extension}", ContentFile(data), THUMBNAIL_TYPES[extension]))
        with transaction.atomic():
            # The owner's row lock makes concurrent uploads of one user take turns at the quota.
            get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
            _check_quota(owner, content.size)
            return Media.objects.create(
                owner=owner,
                kind=kind,
                file=stored[0],
                thumbnail=stored[1] if len(stored) > 1 else "",
                content_type=inspected.content_type,
                size=content.size,
                width=inspected.width,
                height=inspected.height,
                duration=inspected.duration,
                filename=clean_filename(uploaded_file.name, f"{kind}.{inspected.extension}"),
            )
    except Exception:
        for name in stored:
            default_storage.delete(name)
        raise


def media_for_attachment(*, owner: AbstractBaseUser, media_id: str, kind: str, field: str = "content") -> Media:
    """The caller's own upload of exactly that kind (attached before or not), else a 400 on field."""
    pk = parse_id("media", media_id)
    media = Media.objects.filter(pk=pk, owner=owner, kind=kind).first() if pk is not None else None
    if media is None:
        raise ValidationError({field: [f"Not the media_id of a {kind} upload of yours."]})
    return media


def media_mark_attached(media: Media) -> bool:
    """Records that a message or an avatar uses the upload, so purge_media keeps it; False if the
    upload was deleted meanwhile.

    The update holds the row until commit, also when it was attached before: a removal of the
    last other message carrying it (chat.services.message_remove) then waits and sees this one.
    """
    return bool(Media.objects.filter(pk=media.pk).update(attached_at=Coalesce("attached_at", timezone.now())))


def media_discard_if_unused(media_id: int, *, in_use: Callable[[int], bool]) -> None:
    """Deletes an upload (its files on commit) unless the app that used it still does: `in_use`
    (chat's media_in_use: a media_id may be sent more than once). The row is locked before asking,
    so a use that has not committed yet (media_mark_attached holds the row) is waited for."""
    upload = Media.objects.select_for_update().filter(pk=media_id).first()
    if upload is not None and not in_use(media_id):
        upload.delete()


def _image_bytes_for_owner(*, owner, media_id, field):
    """The bytes of an image the caller uploaded, for an avatar made from it (which attaches it)."""
    media = media_for_attachment(owner=owner, media_id=media_id, kind=Kind.IMAGE, field=field)
    media_mark_attached(media)
    with default_storage.open(media.file) as file:
        return file.read()


def avatar_replace(*, owner: AbstractBaseUser, old: str, value: str, field: str = "avatar") -> str:
    """The storage name of a new avatar (user or group) from what the client sent, the old file
    deleted once the change commits. `value`: base64:<data>, a data:image URI, or the media_id
    of an image `owner` uploaded; "" removes the avatar."""
    if not value:
        new = ""
    elif value.startswith(("base64:", "data:")):
        new = store_avatar(decode_data_uri(value, field), field)
    else:
        new = store_avatar(_image_bytes_for_owner(owner=owner, media_id=value, field=field), field)
    if old:
        # Robust: the change has committed by then; a storage error leaves a stray file (logged),
        # not a 500 for a write that succeeded.
        transaction.on_commit(lambda: default_storage.delete(old), robust=True)
    return new


def media_orphans(*, older_than: timedelta | None = None) -> QuerySet[Media]:
    """Uploads that no message or avatar used within MEDIA_ORPHAN_TTL (or older_than)."""
    cutoff = timezone.now() - (settings.MEDIA_ORPHAN_TTL if older_than is None else older_than)
    return Media.objects.filter(attached_at__isnull=True, created_at__lt=cutoff)


def media_purge_orphans(*, older_than: timedelta | None = None) -> int:
    """Deletes the orphans, in batches (their files go once each batch commits); returns how many."""
    orphans = media_orphans(older_than=older_than)
    purged = 0
    # Row locks: an upload that a message attaches meanwhile is re-checked, never deleted.
    for ids in in_batches(orphans.select_for_update().values_list("pk", flat=True), size=PURGE_BATCH):
        purged += Media.objects.filter(pk__in=ids).delete()[0]
    return purged
