import importlib
import io

import pytest
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from rest_framework.test import APIRequestFactory

from imserver import settings as project_settings
from imserver.api import PayloadTooLarge
from media.models import Media
from media.uploads import MULTIPART_OVERHEAD, MediaUploadParser
from tests.accounts.test_auth import assert_error
from tests.media import files
from tests.media.conftest import post_upload

pytestmark = pytest.mark.django_db

KB = 1024


@pytest.fixture
def limits(settings):
    settings.MEDIA_MAX_BYTES = {"image": 100 * KB, "audio": 200 * KB, "video": 400 * KB, "file": 300 * KB}
    return settings.MEDIA_MAX_BYTES


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it the parser read."""

    def __init__(self, data):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def parse(form):
    body = encode_multipart(BOUNDARY, form)
    request = APIRequestFactory().post("/v1/media/upload", body, content_type=MULTIPART_CONTENT)
    stream = CountingStream(body)
    try:
        MediaUploadParser().parse(stream, MULTIPART_CONTENT, {"request": request})
    except PayloadTooLarge as exc:
        return stream, exc
    return stream, None


class TestWhileStreaming:
    def test_stops_reading_once_the_declared_types_limit_is_passed(self, limits):
        stream, error = parse({"type": "image", "file": files.upload(b"\xff" * (390 * KB), "big.jpg")})
        assert error is not None and "102400 bytes" in str(error.detail)
        # Stopped a chunk or two (64 KiB each) past the limit, long before the end of the body.
        assert limits["image"] < stream.bytes_read <= limits["image"] + 3 * 64 * KB

    def test_the_temporary_file_gets_no_byte_past_the_limit(self, limits, monkeypatch):
        written = []
        original = TemporaryFileUploadHandler.receive_data_chunk
        monkeypatch.setattr(
            TemporaryFileUploadHandler,
            "receive_data_chunk",
            lambda self, raw, start: written.append(len(raw)) or original(self, raw, start),
        )
        _, error = parse({"type": "image", "file": files.upload(b"\xff" * (390 * KB), "big.jpg")})
        assert error is not None and 0 < sum(written) <= limits["image"]

    def test_without_a_type_first_the_largest_limit_applies(self, limits):
        # The service still holds it to its type's limit once the type is known (see below).
        _, error = parse({"file": files.upload(b"\xff" * (390 * KB), "big.bin"), "type": "image"})
        assert error is None
        _, error = parse({"file": files.upload(b"\xff" * (401 * KB), "big.bin"), "type": "image"})
        assert error is not None

    def test_a_file_within_its_limit_is_parsed_to_a_temporary_file(self, limits):
        stream, error = parse({"type": "file", "file": files.upload(b"\xff" * (250 * KB), "ok.bin")})
        assert error is None and stream.bytes_read == len(stream.getvalue())

    def test_content_length_above_the_largest_limit_is_refused_before_reading(self, limits):
        stream, error = parse({"type": "file", "file": files.upload(b"\xff" * (400 * KB + MULTIPART_OVERHEAD), "x")})
        assert error is not None and stream.bytes_read == 0


class TestOverTheApi:
    @pytest.mark.parametrize(
        ("kind", "make"),
        [
            ("image", lambda size: files.image_bytes("PNG") + b"\0" * size),
            ("audio", lambda size: files.wav_bytes() + b"\0" * size),
            ("video", lambda size: files.video_bytes() + b"\0" * size),
            ("file", lambda size: b"\0" * size),
        ],
    )
    def test_each_type_has_its_limit(self, user_api, limits, settings, kind, make):
        body = assert_error(post_upload(user_api, make(limits[kind] + 1), kind), 413)
        assert str(limits[kind]) in body["details"]
        assert not Media.objects.exists()
        assert not [path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()]

    def test_limit_applies_also_when_type_comes_after_the_file(self, user_api, limits):
        form = {"file": files.upload(b"\0" * (limits["image"] + 1), "late.png"), "type": "image"}
        assert_error(user_api.post("/v1/media/upload", form, format="multipart"), 413)

    def test_same_size_passes_under_a_larger_limit(self, user_api, limits):
        assert post_upload(user_api, b"\0" * (limits["image"] + 1), "file").status_code == 201

    def test_limits_come_from_the_environment(self, monkeypatch):
        monkeypatch.setenv("MEDIA_MAX_IMAGE_BYTES", "12345")
        monkeypatch.setenv("MEDIA_URL_TTL", "600")
        try:
            reloaded = importlib.reload(project_settings)
            assert reloaded.MEDIA_MAX_BYTES["image"] == 12345
            assert reloaded.MEDIA_MAX_BYTES["video"] == 200 * 1024 * 1024
            assert reloaded.MEDIA_URL_TTL.total_seconds() == 600
        finally:
            monkeypatch.undo()
            importlib.reload(project_settings)
