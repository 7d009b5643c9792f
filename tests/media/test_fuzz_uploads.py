"""A bounded fuzz of every upload route (contract 23, issue 19): the media upload for each declared
type, the user's avatar (base64, data URI, media id) and a group's avatar, fed the corpus of
tests/media/corpus.py. No request may get a 5xx or cost more than 2 s of CPU, and every refusal is
in the error envelope."""

import base64

import pytest
from django.core.files.storage import default_storage

from media.models import Media
from tests.conftest import client_for, group_of, make_user
from tests.fuzzing import assert_cheap_and_not_5xx
from tests.media import corpus, files

pytestmark = pytest.mark.django_db

ACCEPTED_KINDS = corpus.accepted_kinds()
OTHERS = {
    "audio": {"wav": files.wav_bytes, "mp3": lambda: files.encoded_audio("mp3", "mp3")},
    "video": {"mp4": files.video_bytes},
    "file": {"pdf": lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"},
}
KINDS = ("image", "audio", "video", "file")


def upload_corpus():
    for name in ACCEPTED_KINDS:
        yield "image", name, lambda name=name: ACCEPTED_KINDS[name]
    for kind, makers in OTHERS.items():
        for name, make in makers.items():
            yield kind, name, make


def ids(value):
    return value if isinstance(value, str) else ""


def stored_bytes(response):
    media = Media.objects.get(pk=int(response.json()["media_id"].removeprefix("media")))
    with default_storage.open(media.file) as stored:
        return stored.read()


class Routes:
    """Every route that takes an image, for one user (who owns a group)."""

    def __init__(self, username):
        self.user = make_user(username)
        self.client = client_for(self.user)
        self.group_id = f"g{group_of(self.user).pk}"

    def upload(self, label, data, kind, name="fuzz.bin", content_type="application/octet-stream"):
        body = {"type": kind, "file": files.upload(data, name, content_type)}
        return assert_cheap_and_not_5xx(label, self.client.post, "/v1/media/upload", body, format="multipart")

    def avatars(self, label, data):
        """The user's avatar as base64 and as a data URI, and the group's; the responses."""
        encoded = base64.b64encode(data).decode()
        return [
            assert_cheap_and_not_5xx(f"{label} {route}", self.client.patch, path, {"avatar": value}, format="json")
            for route, path, value in (
                ("avatar", "/v1/user/me", f"base64:{encoded}"),
                ("avatar data uri", "/v1/user/me", f"data:image/png;base64,{encoded}"),
                ("group avatar", f"/v1/groups/{self.group_id}", f"base64:{encoded}"),
            )
        ]

    def everywhere(self, label, data):
        """Every upload type and every avatar route; the image upload's response."""
        image = self.upload(label, data, "image", "fuzz.png", "image/png")
        for kind in KINDS[1:]:
            self.upload(f"{label} as {kind}", data, kind)
        self.avatars(label, data)
        return image


@pytest.mark.parametrize(("kind", "name", "make"), list(upload_corpus()), ids=ids)
def test_every_upload_type_mutated(kind, name, make):
    routes = Routes(f"fuzz-{kind}")
    for label, data in corpus.mutations(make(), seed=name):
        routes.upload(f"{name} {label}", data, kind, f"fuzz.{name}")
        # A mutation may well be another type to the sniffer: the other declared types too.
        for other in ("image", "file"):
            routes.upload(f"{name} {label} as {other}", data, other, "x")
        if kind == "image":
            routes.avatars(f"{name} {label}", data)


def test_every_format_pillow_writes():
    routes = Routes("formats")
    written = corpus.every_writable_format()
    assert {"BMP", "TIFF", "ICO", "JPEG2000", "PNG", "WEBP", "GIF"} <= set(written)
    for fmt, data in written.items():
        accepted = fmt in corpus.ACCEPTED
        assert routes.everywhere(fmt, data).status_code == (201 if accepted else 415), fmt
        assert routes.upload(f"{fmt} as file", data, "file").status_code == 201
        # Avatars take the formats uploads take: Pillow's other decoders never see a client's bytes.
        assert {response.status_code for response in routes.avatars(fmt, data)} == {200 if accepted else 400}, fmt


def test_images_at_the_budget_are_stored_within_the_cpu_bound():
    routes = Routes("budget")
    for label, data in corpus.at_the_budget().items():
        assert routes.upload(label, data, "image", "big").status_code == 201, label


def test_images_past_the_budget_are_cheap_400s():
    """The 7000x7000 WebP of 1.9 kB cost 3 s of CPU when PNG, WebP and GIF stills shared JPEG's
    50 Mpx budget."""
    routes = Routes("past")
    for label, data in corpus.past_the_budget().items():
        assert routes.upload(label, data, "image", "big").status_code == 400, label
        assert {response.status_code for response in routes.avatars(label, data)} == {400}, label


def test_many_frames():
    routes = Routes("frames")
    for label, data in corpus.many_frames().items():
        routes.everywhere(label, data)


def test_polyglots_keep_only_their_pixels():
    routes = Routes("polyglot")
    for label, data in corpus.polyglots().items():
        response = routes.everywhere(label, data)
        if response.status_code == 201:
            stored = stored_bytes(response)
            assert corpus.SCRIPT not in stored and b"shell.php" not in stored, label
    assert routes.upload("empty", b"", "file").status_code == 400


def test_wrong_names_and_content_types():
    routes = Routes("names")
    png, jpeg = files.image_bytes("PNG"), files.image_bytes("JPEG")
    as_jpeg = routes.upload("png named jpeg", png, "image", "photo.jpg", "image/jpeg")
    assert as_jpeg.status_code == 201 and as_jpeg.json()["content_type"] == "image/png"
    as_exe = routes.upload("jpeg named exe", jpeg, "image", "setup.exe", "application/x-msdownload")
    assert as_exe.status_code == 201 and as_exe.json()["content_type"] == "image/jpeg"
    bmp = corpus.every_writable_format()["BMP"]
    assert routes.upload("bmp named png", bmp, "image", "x.png", "image/png").status_code == 415
    assert routes.upload("png as audio", png, "audio", "x.mp3", "audio/mpeg").status_code == 415


def test_an_avatar_from_an_upload():
    routes = Routes("by-id")
    media_id = routes.upload("gif", files.animated_gif(), "image", "a.gif").json()["media_id"]
    response = assert_cheap_and_not_5xx(
        "by id", routes.client.patch, "/v1/user/me", {"avatar": media_id}, format="json"
    )
    assert response.status_code == 200 and response.json()["avatar"]
