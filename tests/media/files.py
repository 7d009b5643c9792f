"""Real media files made on the spot: images with Pillow, audio with the standard library's wave
and PyAV's encoders (MP3, Opus, AAC), videos with PyAV."""

import io
import math
import struct
import wave

import av
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def image_bytes_from(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def image_bytes(fmt="PNG", size=(64, 48), mode="RGB", color="red", **options):
    return image_bytes_from(Image.new(mode, size, color), fmt, **options)


def photo_with_gps(fmt="JPEG", size=(64, 48), orientation=1):
    """A camera photo: EXIF with maker, orientation and GPS position, and XMP with the position."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[ORIENTATION] = orientation
    exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    image = Image.new("RGB", size, "white")
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))  # left half red: shows the turn
    return image_bytes_from(image, fmt, exif=exif.tobytes(), xmp=b"<x:xmpmeta>GPSLatitude 48,51N</x:xmpmeta>")


def animated_gif(frames=3, size=(40, 30)):
    images = [Image.new("RGB", size, (80 * i, 0, 255 - 80 * i)) for i in range(frames)]
    return image_bytes_from(
        images[0], "GIF", save_all=True, append_images=images[1:], duration=[100, 200, 300], loop=0, comment=b"hi"
    )


def _tone(seconds, rate):
    samples = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(samples))


def wav_bytes(seconds=1.5, rate=8000):
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(_tone(seconds, rate))
    return out.getvalue()


def encoded_audio(container_format, codec, seconds=2.0, rate=48000):
    """Mono audio of the given length through one of PyAV's encoders (mp3, ogg/opus, ipod/aac)."""
    out = io.BytesIO()
    pcm = _tone(seconds, rate)
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        for offset in range(0, len(pcm) // 2, 1024):
            chunk = pcm[offset * 2 : (offset + 1024) * 2]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
            frame.planes[0].update(chunk)
            frame.sample_rate, frame.pts = rate, offset
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def video_bytes(container_format="mp4", codec="libx264", seconds=1.0, fps=10, size=(64, 48), rotation=0):
    """A short video whose left half is red; `rotation` is the display matrix phones write."""
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        picture = Image.new("RGB", size, "white")
        picture.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
        for _ in range(int(seconds * fps)):
            container.mux(stream.encode(av.VideoFrame.from_image(picture)))
        container.mux(stream.encode(None))
    return out.getvalue()


def upload(data, name="upload.bin", content_type="application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def gif_with_growing_frames(frames, side):
    """A GIF whose logical screen and first frame are 1x1, then `frames` frames of side x side (each
    an empty LZW stream): Pillow grows its canvas to each large frame as it seeks to it."""

    def frame(width, height, lzw):
        return b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + bytes([2, len(lzw), *lzw, 0])

    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    first = frame(1, 1, b"\x44\x01")  # LZW code size 2, 3-bit codes: clear, colour 0, end
    return screen + first + frame(side, side, b"\x2c") * frames + b";"  # clear, end


def animated_webp(frames=4, size=(100, 100)):
    images = [Image.new("RGB", size, (60 * i, 0, 0)) for i in range(frames)]
    return image_bytes_from(images[0], "WEBP", save_all=True, append_images=images[1:], lossless=True)
