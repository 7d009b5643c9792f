"""GET /v1/capabilities (contract 22): features and limits as the server enforces them."""

import pytest

from imserver.capabilities import FEATURES
from tests.conftest import make_user, private_chat, send
from tests.media.conftest import post_upload

pytestmark = pytest.mark.django_db

CONTRACT_FEATURES = {
    "devices", "push", "read_sync", "typing", "edit", "recall", "hide", "blocks", "privacy",
    "conversation_settings", "replies", "mentions", "forward", "reactions", "delivered", "search",
    "idempotency_key",
}  # fmt: skip


def test_shape_and_defaults(user_api):
    response = user_api.get("/v1/capabilities")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "1.0.0"
    assert "idempotency_key" in body["features"]
    assert set(body["features"]) <= CONTRACT_FEATURES
    assert body["features"] == list(FEATURES)
    assert body["limits"] == {
        "message_edit_window_seconds": 86400,
        "message_recall_window_seconds": 120,
        "group_max_members": 500,
        "upload_max_bytes": {"image": 20 << 20, "video": 200 << 20, "audio": 50 << 20, "file": 100 << 20},
        "text_max_chars": 10_000,
    }
    assert body["push"] == {"fcm": False, "apns": False}


def test_needs_a_token(api):
    assert api.get("/v1/capabilities").status_code == 401


def test_the_limits_shown_are_the_limits_enforced(user_api, user, settings):
    settings.GROUP_MAX_MEMBERS = 2
    settings.MESSAGE_MAX_LENGTH = 5
    settings.MEDIA_MAX_BYTES = {**settings.MEDIA_MAX_BYTES, "file": 10}
    limits = user_api.get("/v1/capabilities").json()["limits"]
    assert (limits["group_max_members"], limits["text_max_chars"], limits["upload_max_bytes"]["file"]) == (2, 5, 10)

    members = [str(make_user(name).pk) for name in ("bob", "carol")]
    body = {"type": "group", "name": "Too many", "members": members}
    assert user_api.post("/v1/conversations", body, format="json").status_code == 400
    conversation = private_chat(user, make_user("dave"))
    url = f"/v1/conversations/c{conversation.pk}/messages"
    assert user_api.post(url, {"type": "text", "content": "123456"}, format="json").status_code == 400
    assert user_api.post(url, {"type": "text", "content": "12345"}, format="json").status_code == 201
    assert post_upload(user_api, b"x" * 11, "file").status_code == 413
    assert post_upload(user_api, b"x" * 10, "file").status_code == 201


def test_push_follows_the_configured_providers(user_api, settings):
    assert user_api.get("/v1/capabilities").json()["push"] == {"fcm": False, "apns": False}
    settings.FCM_CREDENTIALS_FILE = "/etc/imserver/fcm.json"
    assert user_api.get("/v1/capabilities").json()["push"] == {"fcm": True, "apns": False}


def test_features_name_the_part_2_sections_that_landed(user_api):
    features = user_api.get("/v1/capabilities").json()["features"]
    for feature in (
        "devices", "push", "read_sync", "edit", "recall", "hide", "blocks", "privacy", "conversation_settings", "search"
    ):  # fmt: skip
        assert feature in features


def test_edit_and_recall_windows_shown_are_the_windows_enforced(user_api, user, settings):
    settings.MESSAGE_EDIT_WINDOW_SECONDS, settings.MESSAGE_RECALL_WINDOW_SECONDS = 0, 0
    limits = user_api.get("/v1/capabilities").json()["limits"]
    assert (limits["message_edit_window_seconds"], limits["message_recall_window_seconds"]) == (0, 0)
    message = send(user, private_chat(user, make_user("dave")), "hi")
    url = f"/v1/conversations/c{message.conversation_id}/messages/m{message.pk}"
    assert user_api.patch(url, {"content": "edited"}, format="json").status_code == 403
    assert user_api.post(url + "/recall").status_code == 403
