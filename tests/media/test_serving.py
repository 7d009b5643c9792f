import asyncio
import io
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import AsyncClient, Client

from media import storage, views
from media.models import Media
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for
from tests.media import files
from tests.media.conftest import post_upload
from tests.media.test_upload import HTML, SVG

pytestmark = pytest.mark.django_db


def fetch(url, **headers):
    """GET with no auth header at all, as the app's image and video players do (through WSGI)."""
    response = client_for().get(url, headers=headers)
    response.body = b"".join(response) if response.streaming else response.content
    return response


def fetch_asgi(url, **headers):
    """The same GET through Django's ASGI request handling, run from this thread so that the view
    sees the test's transaction."""

    async def get():
        response = await AsyncClient().get(url, headers=headers)
        response.body = b"".join([chunk async for chunk in response]) if response.streaming else response.content
        return response

    return async_to_sync(get)()


def uploaded(client, data, kind, name="upload.bin"):
    response = post_upload(client, data, kind, name)
    assert response.status_code == 201, response.content
    return response.json()


def with_query(url, **changes):
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


class TestSignedUrls:
    def test_image_is_served_inline_without_auth(self, user_api):
        body = uploaded(user_api, files.image_bytes("PNG"), "image", "photo.png")
        response = fetch(body["url"])
        assert response.status_code == 200
        assert response.body == default_storage.open(Media.objects.get().file).read()
        assert response["Content-Type"] == "image/png"
        assert response["Content-Disposition"] == 'inline; filename="photo.png"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert response["Cache-Control"].startswith("private, max-age=")
        assert response["Content-Length"] == str(body["size"])

    def test_thumbnail(self, user_api):
        body = uploaded(user_api, files.image_bytes("PNG", size=(800, 600)), "image")
        response = fetch(body["thumbnail_url"])
        assert (response.status_code, response["Content-Type"]) == (200, "image/jpeg")
        assert response.body == default_storage.open(Media.objects.get().thumbnail).read()

    def test_url_expires_after_the_ttl(self, user_api, settings, monkeypatch):
        settings.MEDIA_URL_TTL = timedelta(hours=24)
        now = time.time()
        body = uploaded(user_api, b"data", "file")
        expires = int(parse_qs(urlsplit(body["url"]).query)["exp"][0])
        assert now + 24 * 3600 <= expires <= now + 25 * 3600
        monkeypatch.setattr(time, "time", lambda: expires + 1)
        assert_error(fetch(body["url"]), 403)

    def test_url_stays_the_same_for_a_while_so_clients_can_cache_it(self, user_api, monkeypatch):
        uploaded(user_api, b"data", "file")
        media = Media.objects.get()

        def url_at(moment):
            monkeypatch.setattr(time, "time", lambda: moment)
            return storage.media_url(media)

        hour = 3600 * 500_000
        assert url_at(hour + 10) == url_at(hour + 3000) != url_at(hour + 3610)

    @pytest.mark.parametrize(
        "change",
        [
            {"sig": "A" * 43},
            {"exp": "9999999999"},
            {"exp": "-1"},
            {"exp": "soon"},
            {"exp": "\u00b2"},  # a digit to str.isdigit(), not to int()
            {"exp": "9" * 5000},  # past int()'s digit limit
            {"sig": ""},
        ],
    )
    def test_tampered_url_is_403(self, user_api, change):
        body = uploaded(user_api, b"data", "file")
        assert_error(fetch(with_query(body["url"], **change)), 403)

    def test_signature_of_one_upload_does_not_open_another(self, user_api):
        first = uploaded(user_api, b"first", "file")
        second = uploaded(user_api, b"second", "file")
        stolen = first["url"].replace(first["media_id"], second["media_id"])
        assert_error(fetch(stolen), 403)

    def test_signature_of_the_thumbnail_does_not_open_the_original(self, user_api):
        body = uploaded(user_api, files.image_bytes("PNG"), "image")
        thumbnail_query = urlsplit(body["thumbnail_url"]).query
        assert_error(fetch(body["url"].split("?")[0] + "?" + thumbnail_query), 403)

    def test_no_signature_is_403(self, user_api):
        body = uploaded(user_api, b"data", "file")
        assert_error(fetch(body["url"].split("?")[0]), 403)

    def test_deleted_upload_is_404(self, user_api):
        body = uploaded(user_api, b"data", "file")
        Media.objects.all().delete()
        assert_error(fetch(body["url"]), 404)

    def test_media_without_thumbnail_has_none(self, user_api):
        body = uploaded(user_api, files.wav_bytes(), "audio")
        assert body["thumbnail_url"] is None
        thumbnail = body["url"].replace("?", "/thumbnail?")
        assert fetch(thumbnail).status_code == 403  # signed for the original only

    def test_post_is_not_allowed(self, user_api):
        body = uploaded(user_api, b"data", "file")
        response = Client(enforce_csrf_checks=True).post(body["url"])
        assert_error(response, 405)
        assert response["Allow"] == "GET, HEAD"


class TestAvatars:
    @pytest.fixture
    def avatar(self):
        data = files.image_bytes("PNG")
        return data, "/media/" + default_storage.save("avatars/a1b2.png", ContentFile(data))

    def test_served_publicly(self, avatar):
        data, path = avatar
        response = fetch(path)
        assert (response.status_code, response["Content-Type"], response.body) == (200, "image/png", data)
        assert response["X-Content-Type-Options"] == "nosniff"

    @pytest.mark.parametrize(
        "name",
        [
            "avatars/missing.png",
            "media/2026/01/upload.png",  # an upload: only its signed URL serves it
            "avatars/page.html",  # never ours, never served as a page
            "avatars/../media/2026/01/upload.png",
        ],
    )
    def test_anything_else_is_a_404_envelope(self, name):
        for stored in ("media/2026/01/upload.png", "avatars/page.html"):
            default_storage.save(stored, ContentFile(b"<html>"))
        assert_error(fetch(f"/media/{name}"), 404)

    def test_post_is_not_allowed(self, avatar):
        response = Client(enforce_csrf_checks=True).post(avatar[1])
        assert_error(response, 405)
        assert response["Allow"] == "GET, HEAD"


class TestSafeServing:
    def test_file_is_an_attachment_with_its_name(self, user_api):
        body = uploaded(user_api, b"%PDF-1.4\n", "file", "report.pdf")
        response = fetch(body["url"])
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"] == 'attachment; filename="report.pdf"'

    def test_non_ascii_name_uses_rfc_6266(self, user_api):
        body = uploaded(user_api, b"%PDF-1.4\n", "file", "报告 v2.pdf")
        disposition = fetch(body["url"])["Content-Disposition"]
        assert disposition == "attachment; filename*=utf-8''%E6%8A%A5%E5%91%8A%20v2.pdf"

    def test_svg_file_is_an_octet_stream_attachment(self, user_api):
        body = uploaded(user_api, SVG, "file", "logo.svg")
        response = fetch(body["url"])
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"].startswith("attachment;")
        assert response.body == SVG

    def test_html_file_is_never_html(self, user_api):
        response = fetch(uploaded(user_api, HTML, "file", "index.html")["url"])
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"] == 'attachment; filename="index.html"'

    def test_html_behind_a_gif_header_is_not_served_as_html(self, user_api):
        polyglot = b"GIF89a/*" + HTML + b"*/"
        assert_error(post_upload(user_api, polyglot, "image"), 400)  # not a GIF Pillow can decode
        response = fetch(uploaded(user_api, polyglot, "file", "cat.gif")["url"])
        assert "html" not in response["Content-Type"]
        assert response["Content-Disposition"].startswith("attachment;")
        assert response["X-Content-Type-Options"] == "nosniff"

    def test_audio_and_video_play_inline(self, user_api):
        for data, kind, content_type in (
            (files.wav_bytes(), "audio", "audio/wav"),
            (files.video_bytes(), "video", "video/mp4"),
        ):
            response = fetch(uploaded(user_api, data, kind, "clip")["url"])
            assert response["Content-Type"] == content_type
            assert response["Content-Disposition"] == 'inline; filename="clip"'


class TestStreaming:
    """Each server kind gets an iterator it streams: Django reads the other kind whole into memory."""

    def test_wsgi_gets_a_synchronous_iterator(self, user_api):
        data = files.video_bytes(seconds=2.0)
        response = fetch(uploaded(user_api, data, "video")["url"], Range="bytes=100-")
        assert response.streaming and not response.is_async
        assert (response.status_code, response.body) == (206, data[100:])

    def test_asgi_gets_an_asynchronous_iterator(self, user_api):
        data = files.video_bytes(seconds=2.0)
        response = fetch_asgi(uploaded(user_api, data, "video")["url"], Range="bytes=100-")
        assert response.streaming and response.is_async
        assert (response.status_code, response.body) == (206, data[100:])


class TestRanges:
    @pytest.fixture(params=[fetch, fetch_asgi], ids=["wsgi", "asgi"])
    def get(self, request):
        return request.param

    @pytest.fixture
    def video(self, user_api):
        data = files.video_bytes(seconds=2.0)
        return data, uploaded(user_api, data, "video", "clip.mp4")["url"]

    def test_first_bytes(self, video, get):
        data, url = video
        response = get(url, Range="bytes=0-99")
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes 0-99/{len(data)}"
        assert response["Content-Length"] == "100"
        assert response.body == data[:100]

    def test_open_ended_and_suffix(self, video, get):
        data, url = video
        assert get(url, Range="bytes=1000-").body == data[1000:]
        response = get(url, Range="bytes=-10")
        assert response.body == data[-10:]
        assert response["Content-Range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"

    def test_end_past_the_file_is_clipped(self, video, get):
        data, url = video
        response = get(url, Range=f"bytes=10-{len(data) + 500}")
        assert response.status_code == 206 and response.body == data[10:]

    def test_unsatisfiable(self, video, get):
        data, url = video
        response = get(url, Range=f"bytes={len(data)}-")
        assert_error(response, 416)
        assert response["Content-Range"] == f"bytes */{len(data)}"

    @pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=-"])
    def test_other_ranges_get_the_whole_file(self, video, get, header):
        data, url = video
        response = get(url, Range=header)
        assert response.status_code == 200 and response.body == data
        assert response["Accept-Ranges"] == "bytes"

    def test_head(self, video):
        data, url = video
        response = client_for().head(url)
        assert response.status_code == 200
        assert response["Content-Length"] == str(len(data)) and response.content == b""


class TestObjectStorage:
    @pytest.fixture
    def s3(self, settings):
        settings.MEDIA_STORAGE = "s3"
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "imserver-media",
                    "endpoint_url": "https://objects.example.com",
                    "region_name": "eu-west-1",
                    "access_key": "AKIAEXAMPLE",
                    "secret_key": "secret",
                    "signature_version": "s3v4",
                },
            },
        }

    def test_urls_are_presigned_with_safe_response_headers(self, s3, user):
        media = Media.objects.create(
            owner=user,
            kind="file",
            file="media/2026/11/abc.bin",
            content_type="application/octet-stream",
            size=4,
            filename="page.html",
        )
        url = urlsplit(storage.media_url(media))
        query = parse_qs(url.query)
        assert (url.netloc, url.path) == ("objects.example.com", "/imserver-media/media/2026/11/abc.bin")
        assert query["X-Amz-Expires"] == ["86400"] and query["X-Amz-Signature"]
        assert query["response-content-type"] == ["application/octet-stream"]
        assert query["response-content-disposition"] == ['attachment; filename="page.html"']


class SlowFile(io.BytesIO):
    """A file whose reads wait until the test lets them finish."""

    def __init__(self, data):
        super().__init__(data)
        self.reading, self.finish = threading.Event(), threading.Event()

    def read(self, size=-1):
        self.reading.set()
        self.finish.wait(5)
        return super().read(size)


async def test_a_download_cut_short_closes_its_file_after_the_read_in_flight():
    """Django cancels the response when the client goes away (players often do): the closing
    must wait for the read running in its thread, not fail with "generator already executing"."""
    file = SlowFile(b"video")
    chunks = views._in_threads(views._file_chunks(file, 0, 5))
    reading = asyncio.create_task(anext(chunks))
    await asyncio.to_thread(file.reading.wait, 5)
    reading.cancel()
    await asyncio.sleep(0.1)  # the closing starts while the read still runs
    file.finish.set()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert file.closed
