"""Upload request body and the media shape (contract 8), as REST returns it and messages embed it.

`media_data` builds the response; `MediaOut` describes the same shape for the OpenAPI schema.
"""

from rest_framework import serializers

from media.models import Kind
from media.storage import THUMBNAIL, media_url


class MediaUploadIn(serializers.Serializer):
    file = serializers.FileField(help_text="The file's bytes; its real type is sniffed from them.")
    type = serializers.ChoiceField(
        choices=Kind.choices,
        help_text="What the file is declared to be. Send it before `file`: a file over its type's limit "
        "is then cut off as soon as it passes the limit.",
    )


def media_data(media):
    return {
        "media_id": media.public_id,
        "url": media_url(media),
        "type": media.kind,
        "size": media.size,
        "width": media.width,
        "height": media.height,
        "duration": media.duration,
        "filename": media.filename,
        "thumbnail_url": media_url(media, THUMBNAIL),
        "content_type": media.content_type,
        "created_at": media.created_at,
    }


class MediaOut(serializers.Serializer):
    media_id = serializers.CharField(help_text='"media<digits>"')
    url = serializers.URLField(help_text="Signed URL that needs no auth header; expires after MEDIA_URL_TTL.")
    type = serializers.ChoiceField(choices=Kind.choices)
    size = serializers.IntegerField(help_text="Bytes as stored (images are re-encoded without metadata).")
    width = serializers.IntegerField(allow_null=True, help_text="Pixels, upright; images and videos.")
    height = serializers.IntegerField(allow_null=True)
    duration = serializers.FloatField(allow_null=True, help_text="Seconds; audio and video.")
    filename = serializers.CharField(help_text="The uploaded file's name, sanitized.")
    thumbnail_url = serializers.URLField(
        allow_null=True, help_text="Signed URL of a preview at most 320 px a side (images, video posters)."
    )
    content_type = serializers.CharField(help_text="The type sniffed from the bytes.")
    created_at = serializers.DateTimeField()
