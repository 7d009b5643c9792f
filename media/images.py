"""Image decoding that refuses what is not a real image, and re-encoding without metadata (Pillow)."""

import base64
import binascii
import io
import uuid
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener
from rest_framework.exceptions import ValidationError

from imserver.api import PayloadTooLarge

# Images above this many pixels are refused outright (decompression bombs): Pillow warns above
# MAX_IMAGE_PIXELS and we turn that warning into a refusal.
Image.MAX_IMAGE_PIXELS = 50_000_000
# Animations are re-encoded frame by frame: this bounds the pixels decoded over all frames.
MAX_ANIMATION_PIXELS = 4 * Image.MAX_IMAGE_PIXELS
# The only image info carried over when re-encoding: colours and animation timing. Everything
# else (EXIF with GPS, XMP, comments) is dropped, whatever Pillow would copy by default.
KEPT_INFO = ("icc_profile", "transparency", "duration", "loop", "background")
# iPhones take photos in HEIC, which not every client can show: those are stored as JPEG, and
# so are JPEGs that Pillow reads as MPO (a JPEG with extra pictures, e.g. depth, appended).
CONVERTED_FORMATS = {"HEIF": "JPEG", "MPO": "JPEG"}
ANIMATED_FORMATS = {"GIF", "PNG", "WEBP"}

register_heif_opener()  # Pillow opens HEIC/HEIF through pillow-heif


def open_image(source, field="file"):
    """A Pillow image with its first frame decoded, from bytes or a file, or a 400 naming the field."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError({field: ["Image dimensions are too large."]}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
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


def encode_still(image, max_side):
    """A flat copy of an (upright) image at most max_side a side: PNG if it has transparency, else
    JPEG. Returns (bytes, extension)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    if has_alpha:
        image.save(out, format="PNG", optimize=True)
        return out.getvalue(), "png"
    image.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "jpg"


def reencode_image(image, field="file"):
    """The image re-encoded in its own format (JPEG, PNG, GIF or WebP; HEIC becomes JPEG) with no
    metadata: EXIF orientation applied to the pixels, animations kept.
    Returns (bytes, upright first frame)."""
    image_format = CONVERTED_FORMATS.get(image.format, image.format)
    frames = getattr(image, "n_frames", 1) if image_format in ANIMATED_FORMATS else 1
    if frames > 1:
        if image.width * image.height * frames > MAX_ANIMATION_PIXELS:
            raise ValidationError({field: ["Animation is too large."]})
        first = image.copy()
    else:
        image = first = ImageOps.exif_transpose(image)
        if image_format == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
    image.info = {key: value for key, value in image.info.items() if key in KEPT_INFO}
    options = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90}}.get(image_format, {})
    out = io.BytesIO()
    try:
        image.save(out, format=image_format, save_all=frames > 1, **options)
    except (OSError, ValueError, EOFError):  # a later frame that does not decode
        raise ValidationError({field: ["Not a valid image."]}) from None
    return out.getvalue(), first


def store_avatar(raw, field="avatar"):
    """Re-encodes an image (no metadata, at most AVATAR_MAX_SIDE a side) and stores it.

    Returns the storage name. Re-encoding drops EXIF (GPS) and anything smuggled after the pixels.
    """
    data, extension = encode_still(ImageOps.exif_transpose(open_image(raw, field)), settings.AVATAR_MAX_SIDE)
    return default_storage.save(f"avatars/{uuid.uuid4().hex}.{extension}", ContentFile(data))
