"""The superusers' side of the user admin: account edits keep the accounts' rules."""

import pytest
from django.test import Client

from accounts.models import User
from privacy.services import user_delete
from realtime import bus
from tests.accounts.test_auth import assert_error, login
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def root_client(db):
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def change_form(user, **changes):
    return {
        "username": user.username,
        "nickname": user.nickname,
        "email": user.email,
        "chosen_status": user.chosen_status,
        "is_active": "on" if user.is_active else "",
        **changes,
    }


class TestDeletedUsernames:
    def test_cannot_add_a_user_named_like_a_deleted_account(self, root_client):
        form = {"username": "deleted-7", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"}
        response = root_client.post("/admin/accounts/user/add/", form)
        assert response.status_code == 200
        assert "are reserved" in response.content.decode()
        assert not User.objects.filter(username="deleted-7").exists()

    def test_cannot_rename_a_user_like_a_deleted_account(self, root_client, user):
        response = root_client.post(f"/admin/accounts/user/{user.pk}/change/", change_form(user, username="Deleted-7"))
        assert response.status_code == 200
        assert "are reserved" in response.content.decode()
        user.refresh_from_db()
        assert user.username == "alice"

    def test_a_deleted_account_keeps_its_name_when_edited(self, root_client, user):
        user_delete(user=user)
        user.refresh_from_db()
        response = root_client.post(f"/admin/accounts/user/{user.pk}/change/", change_form(user, nickname="Gone"))
        assert response.status_code == 302
        user.refresh_from_db()
        assert (user.username, user.nickname) == (f"deleted-{user.pk}", "Gone")


class TestPasswordChange:
    @pytest.mark.parametrize(
        "form",
        [
            {"password1": "An0ther-secret!", "password2": "An0ther-secret!", "usable_password": "true"},
            {"usable_password": "false", "unset-password": "1"},
        ],
        ids=["new password", "password login disabled"],
    )
    def test_revokes_every_token_and_closes_the_sockets(
        self, root_client, api, user, form, monkeypatch, django_capture_on_commit_callbacks
    ):
        pair = login(api).json()
        published = []
        monkeypatch.setattr(bus, "publish", published.extend)
        with django_capture_on_commit_callbacks(execute=True):
            response = root_client.post(f"/admin/accounts/user/{user.pk}/password/", form)
        assert response.status_code == 302, response.content
        assert published == [bus.close_message(user.pk, 4401)]
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {pair['token']}"), 401)
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json"), 401)
        user.refresh_from_db()
        assert user.check_password("An0ther-secret!") == ("password1" in form)


class TestDeactivation:
    def test_deactivating_a_user_revokes_their_tokens_and_sockets(
        self, root_client, api, user, django_capture_on_commit_callbacks
    ):
        pair = login(api).json()
        response = root_client.post(f"/admin/accounts/user/{user.pk}/change/", change_form(user, is_active=""))
        assert response.status_code == 302, response.content
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {pair['token']}"), 401)
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json"), 401)
