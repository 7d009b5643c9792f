import pytest

from chat.models import Message
from media.models import Media
from tests.accounts.test_auth import assert_error
from tests.chat.test_api import history, post_message
from tests.conftest import client_for, events_of, private_chat
from tests.media.conftest import post_upload
from tests.media.files import image_bytes, wav_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user, other_user):
    return private_chat(user, other_user)


@pytest.fixture
def photo(user_api):
    response = post_upload(user_api, image_bytes("JPEG"), "image", "photo.jpg")
    assert response.status_code == 201
    return response.json()


def test_image_message_carries_its_media(user_api, other_user, conversation, photo):
    response = post_message(user_api, conversation, type="image", content=photo["media_id"], caption="Look!")
    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "image" and body["content"] == photo["media_id"] and body["caption"] == "Look!"
    assert body["media"]["media_id"] == photo["media_id"]
    assert body["media"]["type"] == "image" and (body["media"]["width"], body["media"]["height"]) == (64, 48)
    assert body["media"]["url"].startswith("http://testserver/media/f/")
    assert Media.objects.get().attached_at is not None  # no longer an orphan
    event = events_of(other_user, "new_message")[-1]["data"]
    assert event["media"]["media_id"] == photo["media_id"] and event["caption"] == "Look!"
    listed = history(client_for(other_user), conversation).json()["messages"][0]
    assert listed["media"]["filename"] == "photo.jpg"
    assert client_for(other_user).get(listed["media"]["url"]).status_code == 200


def test_audio_message(user_api, conversation):
    media_id = post_upload(user_api, wav_bytes(seconds=1.5), "audio", "voice.wav").json()["media_id"]
    body = post_message(user_api, conversation, type="audio", content=media_id).json()
    assert body["media"]["type"] == "audio" and body["media"]["duration"] == pytest.approx(1.5, abs=0.05)


def test_someone_elses_media_is_400(other_user, conversation, photo):
    response = post_message(client_for(other_user), conversation, type="image", content=photo["media_id"])
    assert "content" in assert_error(response, 400)["fields"]
    assert not Message.objects.exists()


def test_mismatched_kind_is_400(user_api, conversation, photo):
    assert (
        "content"
        in assert_error(post_message(user_api, conversation, type="video", content=photo["media_id"]), 400)["fields"]
    )


@pytest.mark.parametrize("content", ["media999999", "hello", ""])
def test_unknown_media_is_400(user_api, conversation, content):
    assert_error(post_message(user_api, conversation, type="file", content=content), 400)


def test_text_messages_have_no_media(user_api, conversation):
    assert post_message(user_api, conversation, content="plain").json()["media"] is None


@pytest.mark.parametrize("count", [1, 6])
def test_a_history_page_loads_its_uploads_in_one_query(user_api, conversation, count, django_assert_max_num_queries):
    uploads = [post_upload(user_api, image_bytes("PNG"), "image").json()["media_id"] for _ in range(count)]
    for media_id in uploads:
        post_message(user_api, conversation, type="image", content=media_id)
    with django_assert_max_num_queries(4):  # auth, membership, the page, its uploads
        page = history(user_api, conversation).json()["messages"]
    assert [m["media"]["media_id"] for m in page] == uploads[::-1]
