"""A bounded fuzz of every upload type (contract 23): a corpus of real files of each format the
server accepts, built here, and seeded mutations of each (truncated, bytes flipped, the declared
dimensions inflated). No upload may get a 5xx, and none may cost more than 2 s of CPU."""

import base64
import random
import struct
import time
import zlib

import pytest
from PIL import Image

from tests.conftest import client_for, make_user
from tests.media import files
from tests.media.conftest import post_upload

pytestmark = pytest.mark.django_db

MAX_CPU_SECONDS = 2.0


def apng():
    frames = [Image.new("RGB", (60, 40), (70 * i, 20, 0)) for i in range(3)]
    return files.image_bytes_from(frames[0], "PNG", save_all=True, append_images=frames[1:])


def heic():
    return files.image_bytes("HEIF", size=(64, 48))


IMAGES = {
    "png": lambda: files.image_bytes("PNG"),
    "jpeg": files.photo_with_gps,
    "gif": files.animated_gif,
    "apng": apng,
    "webp": lambda: files.image_bytes("WEBP"),
    "animated-webp": lambda: files.animated_webp(frames=3, size=(40, 30)),
    "heic": heic,
}
OTHERS = {
    "audio": {"wav": files.wav_bytes, "mp3": lambda: files.encoded_audio("mp3", "mp3")},
    "video": {"mp4": files.video_bytes},
    "file": {"pdf": lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"},
}


def inflated_dimensions(data):
    """The format's own header claiming a huge picture (PNG's IHDR, GIF's screen and frames)."""
    if data.startswith(b"\x89PNG"):
        ihdr = bytearray(data[16:29])
        ihdr[0:8] = struct.pack(">II", 60000, 60000)
        crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
        return data[:16] + bytes(ihdr) + crc + data[33:]
    if data.startswith(b"GIF"):
        return data[:6] + struct.pack("<HH", 65535, 65535) + data[10:]
    return data


def mutations(data, seed):
    rng = random.Random(seed)
    yield "as is", data
    yield "inflated", inflated_dimensions(data)
    for cut in (len(data) // 2, len(data) - 7, 40):
        yield f"cut at {cut}", data[:cut]
    for round_ in range(4):
        flipped = bytearray(data)
        for _ in range(1 + round_ * 3):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        yield f"flipped {round_}", bytes(flipped)


def corpus():
    for name, make in IMAGES.items():
        yield "image", name, make
    for kind, makers in OTHERS.items():
        for name, make in makers.items():
            yield kind, name, make


def assert_cheap_and_not_5xx(label, send, *args, **kwargs):
    """send(*args, **kwargs): a response that is no 5xx and cost less than MAX_CPU_SECONDS of CPU."""
    started = time.process_time()
    response = send(*args, **kwargs)
    spent = time.process_time() - started
    assert response.status_code < 500, (label, response.status_code, response.content[:300])
    assert spent < MAX_CPU_SECONDS, (label, spent)
    return response


def ids(value):
    return value if isinstance(value, str) else ""


@pytest.mark.parametrize(("kind", "name", "make"), list(corpus()), ids=ids)
def test_every_upload_type(user_api, kind, name, make):
    for label, data in mutations(make(), seed=name):
        assert_cheap_and_not_5xx(f"{name} {label}", post_upload, user_api, data, kind, f"fuzz.{name}")
        # A mutation may well be another type to the sniffer: the other declared types too.
        for other in ("image", "file"):
            assert_cheap_and_not_5xx(f"{name} {label} as {other}", post_upload, user_api, data, other, "x")


@pytest.mark.parametrize("name", list(IMAGES))
def test_every_image_format_as_an_avatar(name):
    client = client_for(make_user(f"avatar-{name}"))
    for label, data in mutations(IMAGES[name](), seed=name):
        avatar = {"avatar": "base64:" + base64.b64encode(data).decode()}
        assert_cheap_and_not_5xx(f"{name} {label}", client.patch, "/v1/user/me", avatar, format="json")


def test_the_image_bombs_of_issue_19_are_cheap_400s(user_api):
    bombs = [files.gif_with_growing_frames(frames=40, side=8000), files.gif_with_growing_frames(frames=3, side=3000)]
    for data in bombs:
        assert assert_cheap_and_not_5xx("bomb", post_upload, user_api, data, "image", "b.gif").status_code == 400
