"""What an upload really is. Its type is sniffed from the bytes (filetype: magic numbers, pure
Python) and must be one the declared kind accepts (415 otherwise); then the kind's decoder confirms
it and reads what players need: Pillow for images, mutagen for audio, PyAV (FFmpeg) for video.
Only files whose magic numbers say audio or video ever reach mutagen or FFmpeg."""

import dataclasses

import av
import filetype
from django.conf import settings
from mutagen import MutagenError
from mutagen.aac import AAC
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from rest_framework.exceptions import UnsupportedMediaType, ValidationError

from media.images import decoding_slot, encode_still, open_image, reencode_image
from media.models import Kind

OCTET_STREAM = "application/octet-stream"
SNIFF_BYTES = 8192  # filetype never looks further

# Per kind: sniffed type -> (content type to store and serve, extension of the stored file).
IMAGE_TYPES = {
    "image/jpeg": ("image/jpeg", "jpg"),
    "image/png": ("image/png", "png"),
    "image/apng": ("image/png", "png"),  # animated PNG, served as PNG like everyone does
    "image/gif": ("image/gif", "gif"),
    "image/webp": ("image/webp", "webp"),
    "image/heic": ("image/jpeg", "jpg"),  # converted (media.images.CONVERTED_FORMATS)
    "image/heif": ("image/jpeg", "jpg"),
}
AUDIO_TYPES = {
    "audio/mpeg": ("audio/mpeg", "mp3"),
    "audio/mp4": ("audio/mp4", "m4a"),
    "audio/aac": ("audio/aac", "aac"),
    "audio/ogg": ("audio/ogg", "ogg"),
    "audio/x-flac": ("audio/flac", "flac"),
    "audio/x-wav": ("audio/wav", "wav"),
    # Voice recorders (Android's MediaMuxer among them) write audio-only MP4/3GP files whose
    # brand says video; mutagen then insists on an audio track.
    "video/mp4": ("audio/mp4", "m4a"),
    "video/3gpp": ("audio/3gpp", "3gp"),
}
VIDEO_TYPES = {
    "video/mp4": ("video/mp4", "mp4"),
    "video/x-m4v": ("video/mp4", "m4v"),
    "video/quicktime": ("video/quicktime", "mov"),
    "video/3gpp": ("video/3gpp", "3gp"),
    "video/webm": ("video/webm", "webm"),
    "video/x-matroska": ("video/x-matroska", "mkv"),
}
ACCEPTED = {Kind.IMAGE: IMAGE_TYPES, Kind.AUDIO: AUDIO_TYPES, Kind.VIDEO: VIDEO_TYPES}
# The mutagen parser for each accepted audio type (chosen by the sniffed type, not by guessing).
AUDIO_PARSERS = {
    "audio/mpeg": [MP3],
    "audio/mp4": [MP4],
    "video/mp4": [MP4],
    "video/3gpp": [MP4],
    "audio/aac": [AAC],
    "audio/ogg": [OggOpus, OggVorbis, OggFLAC, OggSpeex],
    "audio/x-flac": [FLAC],
    "audio/x-wav": [WAVE],
}


@dataclasses.dataclass
class Inspected:
    content_type: str
    extension: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    data: bytes | None = None  # what to store instead of the upload (re-encoded images)
    thumbnail: tuple[bytes, str] | None = None  # (bytes, extension)


def sniff(file):
    """(MIME type, extension) as the file's magic numbers say, (None, None) when they say nothing."""
    file.seek(0)
    kind = filetype.guess(file.read(SNIFF_BYTES))
    file.seek(0)
    return (kind.mime, kind.extension) if kind else (None, None)


def inspect_upload(*, kind, file):
    """Checks that the file is what its declared kind says and reads its properties."""
    mime, extension = sniff(file)
    if kind == Kind.FILE:
        return Inspected(content_type=mime or OCTET_STREAM, extension=extension or "bin")
    if mime not in ACCEPTED[kind]:
        found = f"a file of type {mime}" if mime else "a file of unknown type"
        raise UnsupportedMediaType(mime or "unknown", f"Declared {kind}, but the upload is {found}.")
    content_type, extension = ACCEPTED[kind][mime]
    inspector = {Kind.IMAGE: _image, Kind.AUDIO: _audio, Kind.VIDEO: _video}[kind]
    return inspector(file, mime, Inspected(content_type=content_type, extension=extension))


def _thumbnail(image):
    return encode_still(image, settings.MEDIA_THUMBNAIL_SIDE)


def _image(file, mime, inspected):
    with decoding_slot():
        data, upright = reencode_image(open_image(file))
        thumbnail = _thumbnail(upright)
    return dataclasses.replace(inspected, width=upright.width, height=upright.height, data=data, thumbnail=thumbnail)


def _audio(file, mime, inspected):
    for parser in AUDIO_PARSERS[mime]:
        file.seek(0)
        try:
            info = parser(file).info
        except (MutagenError, ValueError, EOFError):
            continue
        if info.length > 0 and (parser is not MP4 or info.codec):  # an MP4 needs an audio track
            return dataclasses.replace(inspected, duration=round(info.length, 3))
    raise ValidationError({"file": ["Not a readable audio file."]})


def _video(file, mime, inspected):
    """Duration, displayed size and a poster frame (the first frame, turned upright)."""
    file.seek(0)
    try:
        with av.open(file, mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ValidationError({"file": ["The video has no picture."]})
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if not width or not height or width * height > settings.MEDIA_IMAGE_MAX_PIXELS:
                raise ValidationError({"file": ["Video dimensions are missing or too large."]})
            if container.duration:
                duration = container.duration / av.time_base
            else:
                duration = float(stream.duration * stream.time_base) if stream.duration else None
            frame = next(container.decode(stream), None)
    except (av.FFmpegError, ValueError):
        raise ValidationError({"file": ["Not a readable video."]}) from None
    if frame is None:
        raise ValidationError({"file": ["Not a readable video."]})
    # Phones record sideways and say how to turn the picture (counter-clockwise degrees).
    poster = frame.to_image().rotate(frame.rotation, expand=True) if frame.rotation else frame.to_image()
    return dataclasses.replace(
        inspected,
        width=poster.width,
        height=poster.height,
        duration=round(duration, 3) if duration else None,
        thumbnail=_thumbnail(poster),
    )
