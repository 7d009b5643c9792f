"""Image decoding that refuses what is not a real image, and re-encoding without metadata (Pillow)."""

import base64
import binascii
import contextlib
import io
import struct
import threading
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from pillow_heif import register_heif_opener
from rest_framework.exceptions import ValidationError

from imserver.api import PayloadTooLarge, ServiceUnavailable

# Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS, in every decoder and at every
# frame it seeks to, re-encoding included (below that it only warns, and turning the warning into an
# error with warnings.catch_warnings is neither thread-safe nor in force outside the block).
Image.MAX_IMAGE_PIXELS = settings.MEDIA_IMAGE_MAX_PIXELS // 2
# The only image info carried over when re-encoding: colours and animation timing. Everything
# else (EXIF with GPS, XMP, comments) is dropped, whatever Pillow would copy by default.
KEPT_INFO = ("icc_profile", "transparency", "duration", "loop", "background")
# iPhones take photos in HEIC, which not every client can show: those are stored as JPEG, and
# so are JPEGs that Pillow reads as MPO (a JPEG with extra pictures, e.g. depth, appended).
CONVERTED_FORMATS = {"HEIF": "JPEG", "MPO": "JPEG"}
ANIMATED_FORMATS = {"GIF", "PNG", "WEBP"}
# Re-encoding in these formats costs ten to twenty times JPEG's CPU per pixel (deflate, WebP's
# encoder): their stills get the smaller budget MEDIA_REENCODED_MAX_PIXELS. A 7000x7000 WebP of
# 1.9 kB cost 3 s of CPU, a 4096x4096 one of noise 3.9 s; JPEG and HEIC photos (stored as JPEG) keep
# MEDIA_IMAGE_MAX_PIXELS.
COSTLY_FORMATS = {"GIF", "PNG", "WEBP"}
# The encoders' fastest settings (4096x2048 of noise: WebP 1.1 s -> 0.8 s with method 0; a 4096^2
# PNG of coarse noise 3.4 s -> 0.9 s with deflate level 1, the file a fifth larger).
SAVE_OPTIONS = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90, "method": 0}, "PNG": {"compress_level": 1}}
# What decoding and re-encoding cost a pixel, against the cheapest of each budget (a pixel of noise,
# measured: stills PNG 55 ns and WebP 120 ns; animations GIF 40, APNG 70 and WebP 140 ns): a
# format's pixels count that many times, so every image at the budget costs at most about half a
# second of CPU.
STILL_COST = {"WEBP": 2}
ANIMATION_COST = {"PNG": 2, "WEBP": 3}
# What Pillow may open: the formats uploads accept (media.content.IMAGE_TYPES), for avatars too,
# which are not sniffed first. Pillow's other decoders (PSD, TIFF, EPS through Ghostscript, ...)
# never see a client's bytes.
OPENED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "HEIF")  # JPEG opens MPO too

register_heif_opener()  # Pillow opens HEIC/HEIF through pillow-heif
# What Pillow's decoders (and gif_canvas_sizes) raise for a file that is not what it claims to be.
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError)

# Decoding is the costly part of an upload (CPU and memory grow with the pixels): at most this many
# decode at once in a process; a request that waits longer than MEDIA_DECODE_WAIT gets a 503.
_decode_slots = threading.BoundedSemaphore(settings.MEDIA_DECODE_CONCURRENCY)


@contextlib.contextmanager
def decoding_slot():
    if not _decode_slots.acquire(timeout=settings.MEDIA_DECODE_WAIT.total_seconds()):
        raise ServiceUnavailable("Too many images are being processed; retry shortly.")
    try:
        yield
    finally:
        _decode_slots.release()


def gif_canvas_sizes(data):
    """The size of the canvas Pillow decodes each frame of a GIF onto, read from the frame headers
    without decoding: Pillow grows the canvas to fit a frame larger than the logical screen, so a
    1x1 GIF can hold 8000x8000 frames."""
    width, height = struct.unpack_from("<HH", data, 6)
    position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    sizes = []

    def skip_sub_blocks(at):
        while at < len(data) and data[at]:
            at += data[at] + 1
        return at + 1

    while position < len(data) and data[position] != 0x3B:  # the trailer
        block = data[position]
        if block == 0x21:  # extension: label, then sub-blocks
            position = skip_sub_blocks(position + 2)
        elif block == 0x2C and position + 10 <= len(data):  # image descriptor
            left, top, frame_width, frame_height, flags = struct.unpack_from("<HHHHB", data, position + 1)
            width, height = max(width, left + frame_width), max(height, top + frame_height)
            sizes.append((width, height))
            position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            position = skip_sub_blocks(position + 1)  # after the LZW code size
        else:
            position += 1  # Pillow skips a stray byte too
    return sizes


def frame_sizes(image):
    """The size of every frame the decoder will produce, without decoding any."""
    if image.format == "GIF":
        return gif_canvas_sizes(image.fp.getvalue()) or [image.size]
    frames = getattr(image, "n_frames", 1) if image.format in ANIMATED_FORMATS else 1
    return [image.size] * frames  # APNG and WebP frames are composed onto the full canvas


def check_pixel_budget(image, field):
    """400 unless every frame, at its real size, and all frames together fit the image budget."""
    sizes = frame_sizes(image)
    costly = image.format in COSTLY_FORMATS
    limit = settings.MEDIA_REENCODED_MAX_PIXELS if costly else settings.MEDIA_IMAGE_MAX_PIXELS
    if max(width * height for width, height in sizes) * STILL_COST.get(image.format, 1) > limit:
        raise ValidationError({field: ["Image dimensions are too large."]})
    animation_pixels = sum(width * height for width, height in sizes) * ANIMATION_COST.get(image.format, 1)
    if len(sizes) > 1 and animation_pixels > settings.MEDIA_ANIMATION_MAX_PIXELS:
        raise ValidationError({field: ["Animation is too large."]})


def open_image(source, field="file"):
    """A Pillow image with its first frame decoded, from bytes or a file, or a 400 naming the field.
    Every frame is budgeted (check_pixel_budget) before any is decoded."""
    if not isinstance(source, bytes):  # an upload on disk: Pillow's GIF decoder reads 255 bytes at a time
        source.seek(0)
        source = source.read()
    try:
        image = Image.open(io.BytesIO(source), formats=OPENED_FORMATS)
        check_pixel_budget(image, field)
        image.load()
    except Image.DecompressionBombError:
        raise ValidationError({field: ["Image dimensions are too large."]}) from None
    except DECODE_ERRORS:
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


def upright(image):
    """The image with its EXIF orientation applied to the pixels, in place (exif_transpose's copy of
    a 48 MP photo costs a quarter of a second)."""
    ImageOps.exif_transpose(image, in_place=True)
    return image


def shrunk(image, max_side):
    """A copy at most max_side a side, or the image itself if it fits (what thumbnail() does, without
    first copying the full-size image to shrink in place)."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def encode_still(image, max_side):
    """A flat copy of an (upright) image at most max_side a side: PNG if it has transparency, else
    JPEG. Returns (bytes, extension)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    flat_mode = "RGBA" if has_alpha else "RGB"
    if image.mode != flat_mode:  # convert() copies even when the mode is already right
        image = image.convert(flat_mode)
    image = shrunk(image, max_side)
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
    try:
        return _reencode(image)
    except Image.DecompressionBombError:
        raise ValidationError({field: ["Image dimensions are too large."]}) from None
    except DECODE_ERRORS:  # a later frame that does not decode
        raise ValidationError({field: ["Not a valid image."]}) from None


def _reencode(image):
    image_format = CONVERTED_FORMATS.get(image.format, image.format)
    frames = getattr(image, "n_frames", 1) if image_format in ANIMATED_FORMATS else 1
    options = dict(SAVE_OPTIONS.get(image_format, {}))
    if frames > 1:  # within the budget: open_image checked every frame
        first = image.copy()
        if image_format == "GIF":
            image, *options["append_images"] = gif_frames(image)
    else:
        image = first = upright(image)
        if image_format == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
    image.info = {key: value for key, value in image.info.items() if key in KEPT_INFO}
    out = io.BytesIO()
    image.save(out, format=image_format, save_all=frames > 1, **options)
    return out.getvalue(), first


def gif_frames(image):
    """Every frame of an animated GIF in palette mode. Pillow composes the frames after the first in
    RGB, and its GIF writer quantizes them back by median cut: 70 ms a megapixel, two thirds of the
    re-encoding's CPU. Fast octree costs a tenth of that; it may merge colours a few steps apart
    in a frame of many close colours."""
    frames = []
    for frame in ImageSequence.Iterator(image):
        if frame.mode in ("P", "L"):
            frames.append(frame.copy())
        else:
            paletted = frame.quantize(256, method=Image.Quantize.FASTOCTREE)
            paletted.info = dict(frame.info)  # duration; Pillow's writer finds the transparent colour
            frames.append(paletted)
    return frames


def store_avatar(raw, field="avatar"):
    """Re-encodes an image (no metadata, at most AVATAR_MAX_SIDE a side) and stores it.

    Returns the storage name. Re-encoding drops EXIF (GPS) and anything smuggled after the pixels.
    """
    with decoding_slot():
        data, extension = encode_still(upright(open_image(raw, field)), settings.AVATAR_MAX_SIDE)
    return default_storage.save(f"avatars/{uuid.uuid4().hex}.{extension}", ContentFile(data))
