import base64
import io
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from PIL import Image
from rest_framework.exceptions import ValidationError

from media.models import Media
from media.services import media_for_attachment, media_mark_attached, media_purge_orphans, media_upload
from tests.accounts.test_auth import assert_error
from tests.conftest import client_for
from tests.media import files

pytestmark = pytest.mark.django_db


def upload_as(owner, kind="image", data=None):
    data = data if data is not None else files.image_bytes("PNG") if kind == "image" else files.wav_bytes()
    return media_upload(owner=owner, kind=kind, uploaded_file=files.upload(data, f"x.{kind}"))


def errors_of(call):
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.detail


class TestMediaForAttachment:
    def test_own_upload_of_that_kind(self, user):
        media = upload_as(user, "image")
        assert media_for_attachment(owner=user, media_id=media.public_id, kind="image") == media
        media_mark_attached(media)
        assert media_for_attachment(owner=user, media_id=media.public_id, kind="image") == media

    def test_someone_elses_upload_is_400(self, user, other_user):
        media = upload_as(other_user, "image")
        detail = errors_of(lambda: media_for_attachment(owner=user, media_id=media.public_id, kind="image"))
        assert list(detail) == ["content"]

    def test_wrong_kind_is_400_on_the_named_field(self, user):
        media = upload_as(user, "audio")
        detail = errors_of(
            lambda: media_for_attachment(owner=user, media_id=media.public_id, kind="image", field="attachment")
        )
        assert list(detail) == ["attachment"]

    @pytest.mark.parametrize("media_id", ["media999999", "999", "mediaX", "media", "", "media" + "9" * 40])
    def test_unknown_or_malformed_id_is_400(self, user, media_id):
        upload_as(user, "image")
        assert list(errors_of(lambda: media_for_attachment(owner=user, media_id=media_id, kind="image"))) == ["content"]


class TestMarkAttached:
    def test_sets_attached_at_once(self, user):
        media = upload_as(user, "image")
        assert media_mark_attached(media) is True
        first = Media.objects.get().attached_at
        assert first is not None
        assert media_mark_attached(Media.objects.get()) is True
        assert Media.objects.get().attached_at == first

    def test_a_deleted_upload_is_false(self, user):
        media = upload_as(user, "image")
        Media.objects.filter(pk=media.pk).delete()
        assert media_mark_attached(media) is False


class TestPurge:
    def _age(self, media, hours):
        Media.objects.filter(pk=media.pk).update(created_at=timezone.now() - timedelta(hours=hours))

    def test_deletes_old_orphans_with_their_files_and_keeps_the_rest(self, user, django_capture_on_commit_callbacks):
        old_orphan, recent_orphan, old_attached = (upload_as(user) for _ in range(3))
        self._age(old_orphan, 25)
        self._age(old_attached, 25)
        media_mark_attached(old_attached)
        with django_capture_on_commit_callbacks(execute=True):
            assert media_purge_orphans() == 1
        assert set(Media.objects.values_list("pk", flat=True)) == {recent_orphan.pk, old_attached.pk}
        assert not default_storage.exists(old_orphan.file) and not default_storage.exists(old_orphan.thumbnail)
        assert default_storage.exists(recent_orphan.file) and default_storage.exists(old_attached.file)

    def test_command(self, user, settings, django_capture_on_commit_callbacks):
        settings.MEDIA_ORPHAN_TTL = timedelta(hours=48)
        media = upload_as(user)
        self._age(media, 30)
        out = StringIO()
        call_command("purge_media", stdout=out)
        assert "Purged 0" in out.getvalue()
        call_command("purge_media", "--older-than", "24h", "--dry-run", stdout=out)
        assert f"Would purge 1 unattached upload(s), {media.size} bytes" in out.getvalue()
        assert Media.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("purge_media", "--older-than", "24h", stdout=out)
        assert "Purged 1" in out.getvalue() and not Media.objects.exists()

    def test_command_rejects_a_bad_age(self, db):
        with pytest.raises(CommandError, match="--older-than"):
            call_command("purge_media", "--older-than", "yesterday")

    def test_works_through_more_than_one_batch(self, user, monkeypatch):
        monkeypatch.setattr("media.services.PURGE_BATCH", 2)
        for _ in range(5):
            self._age(upload_as(user, "file", b"data"), 25)
        assert media_purge_orphans() == 5 and not Media.objects.exists()


def test_deleting_the_owner_deletes_the_files(user, django_capture_on_commit_callbacks):
    media = upload_as(user)
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    assert not Media.objects.exists()
    assert not default_storage.exists(media.file) and not default_storage.exists(media.thumbnail)


def test_files_go_only_once_the_deletion_commits(user, django_capture_on_commit_callbacks):
    media = upload_as(user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Media.objects.all().delete()
    assert callbacks and default_storage.exists(media.file)


class TestAvatarFromUpload:
    def test_uploaded_image_becomes_the_avatar(self, user_api, user):
        media = upload_as(user, "image", files.photo_with_gps(size=(2000, 1500)))
        response = user_api.patch("/v1/user/me", {"avatar": media.public_id}, format="json")
        assert response.status_code == 200
        assert response.json()["avatar"].startswith("http://testserver/media/avatars/")
        user.refresh_from_db()
        with default_storage.open(user.avatar) as stored:
            avatar = Image.open(stored)
            assert max(avatar.size) == 1024 and not avatar.getexif()
        assert Media.objects.get().attached_at is not None

    @pytest.mark.parametrize("whose", ["other", "audio", "unknown"])
    def test_not_an_image_of_ones_own_is_400(self, user_api, user, other_user, whose):
        media_id = {
            "other": lambda: upload_as(other_user, "image").public_id,
            "audio": lambda: upload_as(user, "audio").public_id,
            "unknown": lambda: "media424242",
        }[whose]()
        body = assert_error(user_api.patch("/v1/user/me", {"avatar": media_id}, format="json"), 400)
        assert "avatar" in body["fields"]
        user.refresh_from_db()
        assert user.avatar == "" and not Media.objects.filter(attached_at__isnull=False).exists()

    def test_upload_then_avatar_over_the_api(self, user_api, user):
        upload = files.upload(files.image_bytes("PNG", size=(300, 200)), "me.png")
        uploaded = user_api.post("/v1/media/upload", {"type": "image", "file": upload}, format="multipart").json()
        body = user_api.patch("/v1/user/me", {"avatar": uploaded["media_id"]}, format="json").json()
        avatar = client_for().get(body["avatar"])
        assert avatar.status_code == 200
        assert Image.open(io.BytesIO(b"".join(avatar.streaming_content))).size == (300, 200)


@pytest.mark.django_db(transaction=True)  # a real commit: the old file goes after it, in the request
def test_failing_to_delete_the_old_avatar_does_not_fail_the_committed_change(user_api, user, monkeypatch):
    avatar = {"avatar": "base64:" + base64.b64encode(files.image_bytes("PNG")).decode()}
    user_api.patch("/v1/user/me", avatar, format="json")
    user.refresh_from_db()
    old = user.avatar

    def unavailable(storage, name):
        raise OSError("storage unavailable")

    monkeypatch.setattr(FileSystemStorage, "delete", unavailable)
    response = user_api.patch("/v1/user/me", avatar, format="json")
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.avatar != old and default_storage.exists(old)
