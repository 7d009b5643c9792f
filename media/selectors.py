from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Sum

from media.models import Media


def export_sections(user: AbstractBaseUser) -> dict:
    """Media's part of a data export (privacy.services.user_export): the user's uploads."""
    return {"media": _uploads(user)}


def _uploads(user: AbstractBaseUser) -> list[dict]:
    return [
        {
            "media_id": media.public_id,
            "type": media.kind,
            "filename": media.filename,
            "content_type": media.content_type,
            "size": media.size,
            "stored_as": media.file,
            "attached": media.attached_at is not None,
            "created_at": media.created_at,
        }
        for media in Media.objects.filter(owner=user).order_by("pk")
    ]


def media_bytes_stored() -> int:
    return Media.objects.aggregate(total=Sum("size"))["total"] or 0
