"""An image-format corpus built on the spot (Pillow and raw bytes) for the bounded fuzz of uploads
and avatars: every format Pillow can write, the formats the server accepts at the edge of its
budget and past it, many frames, polyglots, wrong names and types, and seeded mutations of each."""

import io
import random
import struct
import zipfile
import zlib

from PIL import Image

from tests.media import files

# What media.content accepts as an image (sniffed); Pillow writes many more, all refused as images.
ACCEPTED = {"JPEG", "PNG", "GIF", "WEBP", "MPO", "HEIF"}
# Modes to try, in order, for a format that cannot write RGB.
MODES = ("RGB", "L", "1", "RGBA")


def noise(size, seed, grain=8):
    """Noise that compresses badly (the costliest pixels to encode), in blocks of `grain` pixels so
    that the file stays under the upload limit."""
    small = (max(1, size[0] // grain), max(1, size[1] // grain))
    data = random.Random(seed).randbytes(small[0] * small[1] * 3)
    return Image.frombytes("RGB", small, data).resize(size, Image.Resampling.NEAREST)


def every_writable_format():
    """{format: bytes} of a 48x32 picture in every format this Pillow can write."""
    Image.init()
    written = {}
    for fmt in sorted(Image.SAVE):
        for mode in MODES:
            try:
                written[fmt] = files.image_bytes(fmt, size=(48, 32), mode=mode, color="white")
                break
            except (OSError, ValueError, KeyError, TypeError, ImportError, AttributeError):
                continue  # this format does not write this mode (or has no encoder here)
    return written


def frames_of(fmt, frames, **options):
    return files.image_bytes_from(frames[0], fmt, save_all=True, append_images=frames[1:], **options)


def at_the_budget():
    """Images as large as the budget allows (media.images): each must be answered cheaply."""
    gif_frames = [noise((1000, 1000), seed, grain=1).convert("P") for seed in range(12)]  # 12 Mpx
    return {
        "png 4096x2048 noise": files.image_bytes_from(noise((4096, 2048), 1, grain=2), "PNG", compress_level=1),
        "webp 2048x2048 noise": files.image_bytes_from(noise((2048, 2048), 2, grain=1), "WEBP", quality=90),
        "jpeg 7000x7000 noise": files.image_bytes_from(noise((7000, 7000), 3, grain=16), "JPEG", quality=85),
        "gif 12 frames of 1000x1000 noise": frames_of("GIF", gif_frames),
        "webp 4 frames of 1000x1000 noise": frames_of("WEBP", [noise((1000, 1000), s, grain=1) for s in range(4)]),
        "apng 6 frames of 1000x1000 noise": frames_of(
            "PNG", [noise((1000, 1000), s, grain=2) for s in range(6)], compress_level=1
        ),
    }


def past_the_budget():
    """Small files whose pixels are over the budget: 400 before decoding."""
    return {
        "png 7000x7000 flat": files.image_bytes("PNG", size=(7000, 7000)),
        "webp 7000x7000 flat": files.image_bytes("WEBP", size=(7000, 7000), lossless=True),  # 1.9 kB, was 3 s
        "png 4097x2048 flat": files.image_bytes("PNG", size=(4097, 2048)),
        "webp 4096x4096 noise": files.image_bytes_from(noise((4096, 4096), 4), "WEBP"),  # was 3.9 s
        "gif 13 frames of 1000x1000": frames_of("GIF", [Image.new("P", (1000, 1000), i) for i in range(13)]),
        "webp 2049x2048 flat": files.image_bytes("WEBP", size=(2049, 2048), lossless=True),
        "webp 5 frames of 1000x1000": frames_of(
            "WEBP", [Image.new("RGB", (1000, 1000), (i, 0, 0)) for i in range(5)], lossless=True
        ),
        "apng 7 frames of 1000x1000": frames_of("PNG", [Image.new("RGB", (1000, 1000), (i, 0, 0)) for i in range(7)]),
        "gif growing frames": files.gif_with_growing_frames(frames=40, side=8000),
    }


def many_frames():
    tiny = [Image.new("RGB", (8, 8), (i % 256, i // 256, 0)) for i in range(2000)]
    return {
        "gif 2000 frames": frames_of("GIF", [frame.convert("P") for frame in tiny], duration=20),
        "apng 1000 frames": frames_of("PNG", tiny[:1000]),
        "webp 1000 frames": frames_of("WEBP", tiny[:1000], lossless=True),
    }


def accepted_kinds():
    """One small file of each variant of the accepted formats."""
    return {
        "png rgba": files.image_bytes("PNG", mode="RGBA", color=(0, 0, 255, 100)),
        "png palette": files.image_bytes("PNG", mode="P"),
        "png 16-bit grey": files.image_bytes("PNG", mode="I;16"),
        "jpeg with gps": files.photo_with_gps(),
        "jpeg progressive": files.image_bytes("JPEG", progressive=True),
        "jpeg cmyk": files.image_bytes("JPEG", mode="CMYK"),
        "jpeg turned": files.photo_with_gps(orientation=6),
        "gif animated": files.animated_gif(),
        "apng": frames_of("PNG", [Image.new("RGB", (60, 40), (70 * i, 20, 0)) for i in range(3)]),
        "webp lossy": files.image_bytes("WEBP", quality=50),
        "webp lossless": files.image_bytes("WEBP", lossless=True),
        "webp animated": files.animated_webp(frames=3, size=(40, 30)),
        "heic": files.image_bytes("HEIF"),
    }


SCRIPT = b"<html><script>alert(document.cookie)</script></html>"


def polyglots():
    """Files that are two things at once: each an image only as far as its pixels go."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("shell.php", "<?php system($_GET['c']); ?>")
    png = files.image_bytes("PNG")
    return {
        "png then zip": png + archive.getvalue(),
        "gif then script": files.animated_gif() + SCRIPT,
        "jpeg with a script comment": files.image_bytes("JPEG", comment=SCRIPT),
        "png magic then html": png[:8] + SCRIPT,
        "gif magic then script": b"GIF89a/*" + SCRIPT + b"*/",
        "pdf then jpeg": b"%PDF-1.4\n" + files.image_bytes("JPEG"),
        "psd-like garbage": b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 30000, 30000, 8, 3) + b"\xff" * 64,
        "zero bytes": b"",
    }


def with_huge_declared_dimensions(data):
    """The format's own header claiming a huge picture (PNG's IHDR, GIF's screen, JPEG's frame)."""
    if data.startswith(b"\x89PNG"):
        ihdr = bytearray(data[16:29])
        ihdr[0:8] = struct.pack(">II", 60000, 60000)
        crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        return data[:16] + bytes(ihdr) + crc + data[33:]
    if data.startswith(b"GIF"):
        return data[:6] + struct.pack("<HH", 65535, 65535) + data[10:]
    if data.startswith(b"\xff\xd8"):
        at = data.find(b"\xff\xc0") if b"\xff\xc0" in data else data.find(b"\xff\xc2")
        if at > 0:
            return data[: at + 5] + struct.pack(">HH", 65000, 65000) + data[at + 9 :]
    return data


def mutations(data, seed):
    """The file as is, with huge declared dimensions, truncated, and with bytes flipped (seeded)."""
    rng = random.Random(seed)
    yield "as is", data
    yield "inflated", with_huge_declared_dimensions(data)
    for cut in (len(data) // 2, len(data) - 7, 40):
        yield f"cut at {cut}", data[:cut]
    for round_ in range(4):
        flipped = bytearray(data)
        for _ in range(1 + round_ * 3):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        yield f"flipped {round_}", bytes(flipped)
