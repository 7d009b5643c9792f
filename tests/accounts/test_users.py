import base64
import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from accounts.models import User
from accounts.services import user_mark_banned
from tests.accounts.test_auth import assert_error
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def png_bytes(size=(64, 48), mode="RGB"):
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, format="PNG")
    return out.getvalue()


class TestMe:
    def test_get(self, user_api, user):
        body = user_api.get("/v1/user/me").json()
        assert body == {
            "user_id": str(user.pk),
            "username": "alice",
            "email": "alice@example.com",
            "email_verified": False,
            "nickname": "Alice",
            "avatar": None,
            "status": "offline",
            "status_message": "",
            "last_online": None,
            "created_at": user.date_joined.isoformat().replace("+00:00", "Z"),
        }

    def test_patch_nickname_and_status_message(self, user_api, user):
        response = user_api.patch("/v1/user/me", {"nickname": "Ally", "status_message": "Working"}, format="json")
        assert response.status_code == 200
        assert response.json()["nickname"] == "Ally"
        assert response.json()["status_message"] == "Working"
        user.refresh_from_db()
        assert (user.nickname, user.status_message) == ("Ally", "Working")

    @pytest.mark.parametrize(
        "text",
        ["gpj\u202eexe.", "ad\u200bmin", "a\u2066b", "line\u2028break", "bell\x07", "\ue000private"],
        ids=["rtl override", "zero-width space", "bidi isolate", "line separator", "control", "private use"],
    )
    @pytest.mark.parametrize("field", ["nickname", "status_message"])
    def test_invisible_and_formatting_characters_are_400(self, user_api, field, text):
        body = assert_error(user_api.patch("/v1/user/me", {field: text}, format="json"), 400)
        assert field in body["fields"]

    def test_emoji_sequences_are_kept(self, user_api):
        family = "Ally \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f"
        assert user_api.patch("/v1/user/me", {"nickname": family}, format="json").json()["nickname"] == family

    def test_registration_refuses_them_too(self, api, db):
        body = {"username": "mallory", "password": "Sup3r-secret!", "email": "m@example.com", "nickname": "a\u202eb"}
        assert "nickname" in assert_error(api.post("/v1/auth/register", body, format="json"), 400)["fields"]

    def test_profile_changes_are_throttled_like_uploads(self, user_api, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": "2/minute"}
        for _ in range(2):
            assert user_api.patch("/v1/user/me", {"nickname": "Ally"}, format="json").status_code == 200
        assert_error(user_api.patch("/v1/user/me", {"nickname": "Ally"}, format="json"), 429)
        assert user_api.get("/v1/user/me").status_code == 200  # reading is not

    @pytest.mark.parametrize("prefix", ["base64:", "data:image/png;base64,"])
    def test_avatar_upload_is_reencoded(self, user_api, user, prefix):
        avatar = prefix + base64.b64encode(png_bytes()).decode()
        response = user_api.patch("/v1/user/me", {"avatar": avatar}, format="json")
        assert response.status_code == 200
        url = response.json()["avatar"]
        assert url.startswith("http://testserver/media/avatars/")
        user.refresh_from_db()
        with default_storage.open(user.avatar) as stored:
            image = Image.open(stored)
            assert image.size == (64, 48)
            assert image.format == "JPEG"

    def test_large_avatar_is_scaled_down(self, user_api, user):
        avatar = "base64:" + base64.b64encode(png_bytes((3000, 1500))).decode()
        assert user_api.patch("/v1/user/me", {"avatar": avatar}, format="json").status_code == 200
        user.refresh_from_db()
        with default_storage.open(user.avatar) as stored:
            assert max(Image.open(stored).size) == 1024

    def test_avatar_with_transparency_stays_png(self, user_api, user):
        avatar = "base64:" + base64.b64encode(png_bytes(mode="RGBA")).decode()
        assert user_api.patch("/v1/user/me", {"avatar": avatar}, format="json").status_code == 200
        user.refresh_from_db()
        assert user.avatar.endswith(".png")

    def test_replacing_avatar_deletes_old_file(self, user_api, user, django_capture_on_commit_callbacks):
        avatar = "base64:" + base64.b64encode(png_bytes()).decode()
        user_api.patch("/v1/user/me", {"avatar": avatar}, format="json")
        user.refresh_from_db()
        first = user.avatar
        with django_capture_on_commit_callbacks(execute=True):
            user_api.patch("/v1/user/me", {"avatar": avatar}, format="json")
        assert not default_storage.exists(first)

    def test_empty_avatar_removes_it(self, user_api, user):
        user_api.patch("/v1/user/me", {"avatar": "base64:" + base64.b64encode(png_bytes()).decode()}, format="json")
        response = user_api.patch("/v1/user/me", {"avatar": ""}, format="json")
        assert response.json()["avatar"] is None

    @pytest.mark.parametrize(
        "avatar",
        [
            "base64:" + base64.b64encode(b"definitely not an image").decode(),
            "base64:!!!not-base64!!!",
            "https://example.com/x.png",
            "data:text/html;base64," + base64.b64encode(b"<script>").decode(),
        ],
    )
    def test_invalid_avatar(self, user_api, avatar):
        assert "avatar" in assert_error(user_api.patch("/v1/user/me", {"avatar": avatar}, format="json"), 400)["fields"]

    def test_oversized_avatar_is_413(self, user_api, settings):
        settings.AVATAR_MAX_BYTES = 1000
        avatar = "base64:" + base64.b64encode(b"x" * 2000).decode()
        assert_error(user_api.patch("/v1/user/me", {"avatar": avatar}, format="json"), 413)

    def test_oversized_body_is_413(self, user_api, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        assert_error(user_api.patch("/v1/user/me", {"nickname": "x" * 2000}, format="json"), 413)

    def test_decompression_bomb_is_refused(self, user_api):
        out = io.BytesIO()
        Image.new("1", (12000, 12000)).save(out, format="PNG")
        avatar = "base64:" + base64.b64encode(out.getvalue()).decode()
        body = assert_error(user_api.patch("/v1/user/me", {"avatar": avatar}, format="json"), 400)
        assert "avatar" in body["fields"]

    @pytest.mark.parametrize("field", ["username", "email", "is_staff", "status", "user_id", "password"])
    def test_unknown_or_read_only_fields_are_400(self, user_api, user, field):
        body = assert_error(user_api.patch("/v1/user/me", {field: "x", "nickname": "Z"}, format="json"), 400)
        assert field in body["fields"]
        user.refresh_from_db()
        assert user.nickname == "Alice" and not user.is_staff

    def test_too_long_values(self, user_api):
        assert_error(user_api.patch("/v1/user/me", {"nickname": "n" * 65}, format="json"), 400)
        assert_error(user_api.patch("/v1/user/me", {"status_message": "s" * 141}, format="json"), 400)

    def test_body_must_be_an_object(self, user_api):
        assert_error(user_api.patch("/v1/user/me", ["nickname"], format="json"), 400)


class TestPublicProfile:
    def test_get(self, user_api, other_user):
        body = user_api.get(f"/v1/users/{other_user.pk}").json()
        assert body == {
            "user_id": str(other_user.pk),
            "username": "bob",
            "nickname": "Bob",
            "avatar": None,
            "status": "offline",
            "status_message": "",
            "last_online": None,
        }

    def test_online_status_shows_choice(self, user_api, other_user):
        User.objects.filter(pk=other_user.pk).update(is_online=True, chosen_status="busy")
        assert user_api.get(f"/v1/users/{other_user.pk}").json()["status"] == "busy"

    @pytest.mark.parametrize("user_id", ["999999", "abc", "12a", "9" * 30, "-1"])
    def test_unknown_or_malformed_id_is_404(self, user_api, user_id):
        assert_error(user_api.get(f"/v1/users/{user_id}"), 404)

    def test_banned_user_is_404(self, user_api, other_user):
        user_mark_banned(user=other_user, reason="spam")
        assert_error(user_api.get(f"/v1/users/{other_user.pk}"), 404)

    def test_needs_auth(self, api, other_user):
        assert_error(api.get(f"/v1/users/{other_user.pk}"), 401)


class TestSearch:
    @pytest.fixture
    def people(self, db):
        return [
            make_user("janedoe", nickname="Jane"),
            make_user("jdoe", nickname="Johnny"),
            make_user("zed", nickname="Doe Junior"),
            make_user("other", nickname="Someone"),
        ]

    def search(self, client, **params):
        return client.get("/v1/users/search", params)

    def test_matches_username_and_nickname_case_insensitively(self, user_api, people):
        body = self.search(user_api, query="DOE").json()
        assert body["total"] == 3
        assert {u["username"] for u in body["users"]} == {"janedoe", "jdoe", "zed"}
        assert set(body["users"][0]) == {"user_id", "username", "nickname", "avatar"}

    def test_exact_username_first(self, user_api, people):
        make_user("doe", nickname="Plain")
        assert self.search(user_api, query="doe").json()["users"][0]["username"] == "doe"

    def test_pagination(self, user_api, people):
        first = self.search(user_api, query="doe", limit=2).json()
        second = self.search(user_api, query="doe", limit=2, offset=2).json()
        assert first["total"] == second["total"] == 3
        assert len(first["users"]) == 2 and len(second["users"]) == 1
        assert not {u["user_id"] for u in first["users"]} & {u["user_id"] for u in second["users"]}

    def test_limit_is_clamped_to_100(self, user_api, db):
        for i in range(105):
            make_user(f"many{i:03d}")
        body = self.search(user_api, query="many", limit=500).json()
        assert body["total"] == 105 and len(body["users"]) == 100

    def test_default_limit_is_20(self, user_api, db):
        for i in range(25):
            make_user(f"many{i:03d}")
        assert len(self.search(user_api, query="many").json()["users"]) == 20

    def test_banned_users_never_appear(self, user_api, people):
        user_mark_banned(user=people[0], reason="spam")
        body = self.search(user_api, query="doe").json()
        assert body["total"] == 2 and "janedoe" not in {u["username"] for u in body["users"]}

    @pytest.mark.parametrize("params", [{}, {"query": ""}, {"query": "a", "limit": "x"}, {"query": "a", "offset": -1}])
    def test_bad_parameters(self, user_api, params):
        assert_error(self.search(user_api, **params), 400)

    def test_throttled(self, user_api, settings, db):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": "2/minute"}
        self.search(user_api, query="a")
        self.search(user_api, query="a")
        response = self.search(user_api, query="a")
        assert_error(response, 429)
        assert int(response["Retry-After"]) > 0

    def test_needs_auth(self, api, db):
        assert_error(self.search(api, query="a"), 401)
