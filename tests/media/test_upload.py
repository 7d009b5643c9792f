import base64
import contextlib
import io
import re
import warnings
from datetime import timedelta

import pytest
from django.conf import settings as settings_module
from django.core.files.storage import default_storage
from PIL import Image

from media.images import decoding_slot
from media.models import Media
from media.services import clean_filename
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for
from tests.media import files
from tests.media.conftest import post_upload

pytestmark = pytest.mark.django_db

SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
AVATAR = "base64:" + base64.b64encode(files.image_bytes()).decode()
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


def stored(media_id, thumbnail=False):
    media = Media.objects.get(pk=int(media_id.removeprefix("media")))
    with default_storage.open(media.thumbnail if thumbnail else media.file) as file:
        return file.read()


def stored_names(settings):
    return [path for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()]


class TestImages:
    def test_png(self, user_api, user):
        response = post_upload(user_api, files.image_bytes("PNG"), "image", "photo.png")
        assert response.status_code == 201
        body = response.json()
        assert re.fullmatch(r"media\d+", body["media_id"])
        assert re.fullmatch(rf"http://testserver/media/f/{body['media_id']}\?exp=\d+&sig=[\w-]+", body["url"])
        assert body["thumbnail_url"].startswith(f"http://testserver/media/f/{body['media_id']}/thumbnail?")
        assert {k: body[k] for k in ("type", "width", "height", "duration", "filename", "content_type")} == {
            "type": "image",
            "width": 64,
            "height": 48,
            "duration": None,
            "filename": "photo.png",
            "content_type": "image/png",
        }
        data = stored(body["media_id"])
        assert body["size"] == len(data)
        assert Image.open(io.BytesIO(data)).format == "PNG"
        media = Media.objects.get()
        assert media.owner == user and media.attached_at is None
        assert re.fullmatch(r"media/\d{4}/\d{2}/[0-9a-f]{32}\.png", media.file)

    def test_jpeg_loses_exif_gps_and_xmp_and_is_turned_upright(self, user_api):
        original = files.photo_with_gps(size=(64, 48), orientation=6)  # 6: turn 90 degrees clockwise
        assert Image.open(io.BytesIO(original)).getexif().get_ifd(files.GPS_IFD)
        body = post_upload(user_api, original, "image", "IMG_0001.JPG").json()
        data = stored(body["media_id"])
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG"
        assert not image.getexif() and "exif" not in image.info and "xmp" not in image.info
        assert b"GPSLatitude" not in data and b"PhoneMaker" not in data
        assert (body["width"], body["height"]) == image.size == (48, 64)
        red, white = (255, 0, 0), (255, 255, 255)
        assert _close(image.getpixel((24, 5)), red) and _close(image.getpixel((24, 58)), white)

    def test_heic_from_an_iphone_becomes_an_upright_jpeg_without_gps(self, user_api):
        original = files.photo_with_gps("HEIF", size=(64, 48), orientation=6)
        body = post_upload(user_api, original, "image", "IMG_0002.HEIC").json()
        assert (body["content_type"], body["width"], body["height"]) == ("image/jpeg", 48, 64)
        data = stored(body["media_id"])
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.size == (48, 64)
        assert not image.getexif() and b"GPSLatitude" not in data and b"PhoneMaker" not in data
        assert _close(image.getpixel((24, 5)), (255, 0, 0))

    def test_gif_keeps_its_animation_and_drops_comments(self, user_api):
        body = post_upload(user_api, files.animated_gif(frames=3), "image", "dance.gif").json()
        image = Image.open(io.BytesIO(stored(body["media_id"])))
        assert (image.format, image.n_frames, body["content_type"]) == ("GIF", 3, "image/gif")
        assert "comment" not in image.info
        assert Image.open(io.BytesIO(stored(body["media_id"], thumbnail=True))).format == "JPEG"

    def test_gif_keeps_every_frames_colours_and_transparency(self, user_api):
        """Frames after the first are requantized on re-encoding (media.images.gif_frames)."""
        frames = []
        for index, colour in enumerate([(255, 0, 0, 255), (30, 200, 90, 255), (17, 34, 51, 255)]):
            frame = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
            frame.paste(colour, (10 * index, 5, 10 * index + 10, 15))
            frames.append(frame)
        gif = files.image_bytes_from(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, disposal=2
        )
        body = post_upload(user_api, gif, "image", "dots.gif").json()
        image = Image.open(io.BytesIO(stored(body["media_id"])))
        for index, frame in enumerate(frames):
            image.seek(index)
            shown = image.convert("RGBA")
            assert shown.getpixel((10 * index + 5, 10)) == frame.getpixel((10 * index + 5, 10))
            assert shown.getpixel((39, 29))[3] == 0 and image.info["duration"] == 100

    def test_animated_png_keeps_its_frames(self, user_api):
        frames = [Image.new("RGB", (40, 30), color) for color in ("red", "blue")]
        apng = files.image_bytes_from(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)
        image = Image.open(io.BytesIO(stored(post_upload(user_api, apng, "image").json()["media_id"])))
        assert (image.format, image.n_frames) == ("PNG", 2)

    def test_jpeg_with_extra_pictures_is_stored_as_one_plain_jpeg(self, user_api):
        frames = [Image.new("RGB", (40, 30), color) for color in ("red", "blue")]
        mpo = files.image_bytes_from(frames[0], "MPO", save_all=True, append_images=frames[1:])
        body = post_upload(user_api, mpo, "image").json()
        image = Image.open(io.BytesIO(stored(body["media_id"])))
        assert (body["content_type"], image.format, getattr(image, "n_frames", 1)) == ("image/jpeg", "JPEG", 1)

    def test_webp_with_transparency(self, user_api):
        body = post_upload(user_api, files.image_bytes("WEBP", mode="RGBA", color=(0, 0, 0, 0)), "image").json()
        assert Image.open(io.BytesIO(stored(body["media_id"]))).format == "WEBP"
        assert Image.open(io.BytesIO(stored(body["media_id"], thumbnail=True))).format == "PNG"

    def test_thumbnail_is_at_most_320_pixels(self, user_api):
        body = post_upload(user_api, files.image_bytes("JPEG", size=(1600, 900)), "image").json()
        assert (body["width"], body["height"]) == (1600, 900)
        assert Image.open(io.BytesIO(stored(body["media_id"], thumbnail=True))).size == (320, 180)

    def test_decompression_bomb_is_400(self, user_api, settings):
        bomb = files.image_bytes("PNG", size=(12000, 12000), mode="1")  # 144 Mpx in a few kB
        body = assert_error(post_upload(user_api, bomb, "image"), 400)
        assert "file" in body["fields"]
        assert not Media.objects.exists() and not stored_names(settings)

    def test_gif_frames_larger_than_their_screen_are_budgeted_at_their_real_size(self, user_api, settings):
        bomb = files.gif_with_growing_frames(frames=3, side=8000)  # 64 Mpx a frame behind a 1x1 screen
        body = assert_error(post_upload(user_api, bomb, "image", "bomb.gif"), 400)
        assert body["fields"]["file"] == ["Image dimensions are too large."]
        assert not Media.objects.exists() and not stored_names(settings)

    def test_gif_frames_are_summed_at_their_real_size(self, user_api):
        many = files.gif_with_growing_frames(frames=4, side=2000)  # 16 Mpx over the animation
        body = assert_error(post_upload(user_api, many, "image", "many.gif"), 400)
        assert body["fields"]["file"] == ["Animation is too large."]

    def test_animated_webp_counts_every_frame_three_times(self, user_api, settings):
        settings.MEDIA_ANIMATION_MAX_PIXELS = 3 * 4 * 100 * 100 - 1
        assert_error(post_upload(user_api, files.animated_webp(frames=4), "image", "a.webp"), 400)
        settings.MEDIA_ANIMATION_MAX_PIXELS = 3 * 4 * 100 * 100
        assert post_upload(user_api, files.animated_webp(frames=4), "image", "a.webp").status_code == 201

    def test_apng_counts_every_frame_twice(self, user_api, settings):
        apng = files.image_bytes_from(
            Image.new("RGB", (100, 100)), "PNG", save_all=True, append_images=[Image.new("RGB", (100, 100), "red")] * 3
        )
        settings.MEDIA_ANIMATION_MAX_PIXELS = 2 * 4 * 100 * 100 - 1
        assert_error(post_upload(user_api, apng, "image", "a.png"), 400)
        settings.MEDIA_ANIMATION_MAX_PIXELS = 2 * 4 * 100 * 100
        assert post_upload(user_api, apng, "image", "a.png").status_code == 201

    def test_webp_stills_count_twice(self, user_api, settings):
        settings.MEDIA_REENCODED_MAX_PIXELS = 2 * 100 * 100 - 1
        assert_error(post_upload(user_api, files.image_bytes("WEBP", size=(100, 100)), "image", "a.webp"), 400)
        settings.MEDIA_REENCODED_MAX_PIXELS = 2 * 100 * 100
        assert post_upload(user_api, files.image_bytes("WEBP", size=(100, 100)), "image", "a.webp").status_code == 201

    def test_the_bomb_check_stays_an_error_after_opening(self):
        # Pillow's own check, at every frame it seeks to while re-encoding, raises above the budget.
        assert Image.MAX_IMAGE_PIXELS * 2 == settings_module.MEDIA_IMAGE_MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(Image.DecompressionBombError):
                Image.open(io.BytesIO(files.gif_with_growing_frames(frames=1, side=8000))).seek(1)

    def test_decoding_is_bounded_per_process(self, user_api, settings):
        settings.MEDIA_DECODE_WAIT = timedelta(0)
        with contextlib.ExitStack() as busy:
            for _ in range(settings.MEDIA_DECODE_CONCURRENCY):
                busy.enter_context(decoding_slot())
            assert_error(post_upload(user_api, files.image_bytes(), "image"), 503)
            assert_error(user_api.patch("/v1/user/me", {"avatar": AVATAR}, format="json"), 503)
        assert post_upload(user_api, files.image_bytes(), "image").status_code == 201

    def test_avatars_go_through_the_same_budget(self, user_api):
        bomb = "base64:" + base64.b64encode(files.gif_with_growing_frames(frames=3, side=8000)).decode()
        body = assert_error(user_api.patch("/v1/user/me", {"avatar": bomb}, format="json"), 400)
        assert body["fields"]["avatar"] == ["Image dimensions are too large."]

    def test_truncated_image_is_400(self, user_api):
        assert_error(post_upload(user_api, files.image_bytes("PNG", size=(300, 300))[:200], "image"), 400)

    def test_gif_with_html_after_it_is_stored_without_it(self, user_api):
        polyglot = files.animated_gif() + HTML
        body = post_upload(user_api, polyglot, "image", "x.gif").json()
        assert b"<script" not in stored(body["media_id"])


def _close(pixel, expected, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


class TestAudio:
    @pytest.mark.parametrize(
        ("make", "content_type", "seconds"),
        [
            (lambda: files.wav_bytes(seconds=1.5), "audio/wav", 1.5),
            (lambda: files.encoded_audio("mp3", "libmp3lame", seconds=2.0, rate=44100), "audio/mpeg", 2.0),
            (lambda: files.encoded_audio("ogg", "libopus", seconds=2.0), "audio/ogg", 2.0),
            (lambda: files.encoded_audio("ipod", "aac", seconds=2.0, rate=44100), "audio/mp4", 2.0),
            # What Android's recorder writes: AAC in an MP4 whose brand says video.
            (lambda: files.encoded_audio("mp4", "aac", seconds=2.0, rate=44100), "audio/mp4", 2.0),
        ],
        ids=["wav", "mp3", "ogg-opus", "m4a", "mp4-audio-only"],
    )
    def test_duration(self, user_api, make, content_type, seconds):
        body = post_upload(user_api, make(), "audio", "voice").json()
        assert (body["type"], body["content_type"]) == ("audio", content_type)
        assert body["duration"] == pytest.approx(seconds, abs=0.06)
        assert body["width"] is body["height"] is body["thumbnail_url"] is None

    def test_unreadable_audio_is_400(self, user_api):
        not_a_wave = b"RIFF\x24\x00\x00\x00WAVEjunk" + b"\0" * 40  # the magic numbers, then nothing
        assert_error(post_upload(user_api, not_a_wave, "audio"), 400)


class TestVideo:
    @pytest.mark.parametrize(
        ("container_format", "codec", "content_type"),
        [("mp4", "libx264", "video/mp4"), ("mov", "libx264", "video/quicktime"), ("webm", "libvpx-vp9", "video/webm")],
    )
    def test_duration_size_and_poster(self, user_api, container_format, codec, content_type):
        data = files.video_bytes(container_format, codec, seconds=1.0, size=(64, 48))
        body = post_upload(user_api, data, "video", f"clip.{container_format}").json()
        assert (body["type"], body["content_type"], body["width"], body["height"]) == ("video", content_type, 64, 48)
        assert body["duration"] == pytest.approx(1.0, abs=0.05)
        assert stored(body["media_id"]) == data  # videos are stored as they came
        poster = Image.open(io.BytesIO(stored(body["media_id"], thumbnail=True)))
        assert poster.format == "JPEG" and poster.size == (64, 48)

    def test_phone_video_recorded_sideways_is_reported_upright(self, user_api):
        body = post_upload(user_api, files.video_bytes(size=(64, 48), rotation=90), "video").json()
        assert (body["width"], body["height"]) == (48, 64)
        poster = Image.open(io.BytesIO(stored(body["media_id"], thumbnail=True))).convert("RGB")
        # Turned 90 degrees counter-clockwise: the red left half ends up at the bottom.
        assert _close(poster.getpixel((24, 58)), (255, 0, 0)) and _close(poster.getpixel((24, 5)), (255, 255, 255))

    def test_audio_only_mp4_is_not_a_video(self, user_api):
        assert_error(post_upload(user_api, files.encoded_audio("mp4", "aac", rate=44100), "video"), 400)

    def test_corrupt_video_is_400(self, user_api):
        data = files.video_bytes()
        assert_error(post_upload(user_api, data[:40] + b"\0" * 500, "video"), 400)

    def test_oversized_frame_is_refused_before_decoding(self, user_api, settings):
        settings.MEDIA_IMAGE_MAX_PIXELS = 64 * 47
        assert_error(post_upload(user_api, files.video_bytes(size=(64, 48)), "video"), 400)


class TestFiles:
    def test_anything_goes_and_is_typed_by_its_bytes(self, user_api):
        body = post_upload(user_api, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "file", "report.pdf").json()
        assert (body["type"], body["content_type"], body["filename"]) == ("file", "application/pdf", "report.pdf")
        assert body["width"] is body["duration"] is body["thumbnail_url"] is None

    def test_unknown_bytes_are_an_octet_stream(self, user_api):
        body = post_upload(user_api, SVG, "file", "logo.svg").json()
        assert body["content_type"] == "application/octet-stream"
        assert Media.objects.get().file.endswith(".bin")

    def test_file_is_stored_unchanged(self, user_api):
        data = files.photo_with_gps()
        assert stored(post_upload(user_api, data, "file", "raw.jpg").json()["media_id"]) == data


class TestDeclaredTypeMustMatch:
    @pytest.mark.parametrize(
        ("make", "kind"),
        [
            (lambda: files.image_bytes("PNG"), "audio"),
            (lambda: files.image_bytes("PNG"), "video"),
            (files.wav_bytes, "image"),
            (files.wav_bytes, "video"),
            (files.video_bytes, "image"),
            (lambda: SVG, "image"),
            (lambda: HTML, "image"),
            (lambda: files.image_bytes("BMP"), "image"),
            (lambda: b"just some text", "audio"),
        ],
        ids=[
            "png-audio",
            "png-video",
            "wav-image",
            "wav-video",
            "mp4-image",
            "svg-image",
            "html-image",
            "bmp-image",
            "text-audio",
        ],
    )
    def test_mismatch_is_415(self, user_api, settings, make, kind):
        body = assert_error(post_upload(user_api, make(), kind), 415)
        assert kind in body["details"]
        assert not Media.objects.exists() and not stored_names(settings)


class TestRequest:
    @pytest.mark.parametrize(
        "form",
        [
            {"type": "image"},
            {"file": files.upload(b"x", "a.txt")},
            {"type": "sticker", "file": files.upload(b"x", "a.txt")},
            {"type": "file", "file": files.upload(b"", "empty.txt")},
            {"type": "file", "file": "not a file"},
        ],
        ids=["no-file", "no-type", "bad-type", "empty-file", "file-not-a-file"],
    )
    def test_bad_form_is_400(self, user_api, form):
        assert_error(user_api.post("/v1/media/upload", form, format="multipart"), 400)

    def test_json_body_is_415(self, user_api):
        assert_error(user_api.post("/v1/media/upload", {"type": "file"}, format="json"), 415)

    def test_needs_auth(self, api):
        assert_error(post_upload(api, files.image_bytes(), "image"), 401)

    def test_throttled(self, user_api, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": "2/minute"}
        for _ in range(2):
            assert post_upload(user_api, b"data", "file").status_code == 201
        response = post_upload(user_api, b"data", "file")
        assert_error(response, 429)
        assert int(response["Retry-After"]) > 0

    def test_throttle_is_per_user(self, user_api, other_user, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": "1/minute"}
        assert post_upload(user_api, b"data", "file").status_code == 201
        assert post_upload(client_for(other_user), b"data", "file").status_code == 201

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
            ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override hid the .exe
            ("tab\there\n.txt", "tabhere.txt"),
            ("照片 2023.jpg", "照片 2023.jpg"),
            ("  ", "file.bin"),
            ("a" * 300 + ".tar.gz", "a" * 252 + ".gz"),
        ],
    )
    def test_filename_is_sanitized(self, name, expected):
        assert clean_filename(name, "file.bin") == expected

    def test_filename_in_response(self, user_api):
        body = post_upload(user_api, b"data", "file", "a" * 300 + ".txt").json()
        assert body["filename"] == "a" * 251 + ".txt"


class TestQuota:
    def test_uploads_past_the_quota_are_413_unattached_ones_counted(self, user_api, other_user, settings):
        settings.MEDIA_QUOTA_BYTES = 2500
        assert post_upload(user_api, b"a" * 1000, "file").status_code == 201
        assert post_upload(user_api, b"b" * 1000, "file").status_code == 201  # neither attached
        body = assert_error(post_upload(user_api, b"c" * 1000, "file"), 413)
        assert "quota" in body["details"] and "2000 of 2500 bytes used" in body["details"]
        assert Media.objects.count() == 2 and len(stored_names(settings)) == 2
        assert post_upload(user_api, b"d" * 500, "file").status_code == 201  # what still fits
        assert post_upload(client_for(other_user), b"e" * 1000, "file").status_code == 201  # per user

    def test_the_default_is_2_gib(self, settings):
        assert settings.MEDIA_QUOTA_BYTES == 2 * 1024**3
