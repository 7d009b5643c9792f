import pytest
from rest_framework.exceptions import ValidationError

from media.models import Media
from media.services import media_for_attachment, media_mark_attached, media_upload
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
        media_mark_attached(media)
        first = Media.objects.get().attached_at
        assert first is not None and media.attached_at == first
        media_mark_attached(Media.objects.get())
        assert Media.objects.get().attached_at == first
