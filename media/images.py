"""Image decoding that refuses what is not a real image, and avatar re-encoding (Pillow)."""

import base64
import binascii
import io
import uuid
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError
from rest_framework.exceptions import ValidationError

from imserver.api import PayloadTooLarge

# Images above this many pixels are refused outright (decompression bombs): Pillow warns above
# MAX_IMAGE_PIXELS and we turn that warning into a refusal.
Image.MAX_IMAGE_PIXELS = 50_000_000


def open_image(raw, field="file"):
    """A fully decoded Pillow image from bytes, or a 400 naming the field."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError({field: ["Image dimensions are too large."]}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ValidationError({field: ["Not a valid image."]}) from None
    return image


def decode_data_uri(value, field="avatar"):
    """'base64:<data>' or 'data:image/...;base64,<data>' -> bytes, size-limited."""
    if value.startswith("base64:"):
        payload = value[len("base64:") :]
    elif value.startswith("data:image/") and ";base64," in value:
        payload = value.split(";base64,", 1)[1]
    else:
        raise ValidationError({field: ["Must be base64:<data>, a data:image/...;base64 URI or a media id."]})
    if len(payload) * 3 // 4 > settings.AVATAR_MAX_BYTES:
        raise PayloadTooLarge(f"{field} is larger than {settings.AVATAR_MAX_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError({field: ["Invalid base64 data."]}) from None


def store_avatar(raw, field="avatar"):
    """Re-encodes an image (no metadata, at most AVATAR_MAX_SIDE a side) and stores it.

    Returns the storage name. Re-encoding drops EXIF (GPS) and anything smuggled after the pixels.
    """
    image = ImageOps.exif_transpose(open_image(raw, field))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((settings.AVATAR_MAX_SIDE, settings.AVATAR_MAX_SIDE))
    out = io.BytesIO()
    if has_alpha:
        image.save(out, format="PNG", optimize=True)
        extension = "png"
    else:
        image.save(out, format="JPEG", quality=85, optimize=True)
        extension = "jpg"
    return default_storage.save(f"avatars/{uuid.uuid4().hex}.{extension}", ContentFile(out.getvalue()))
