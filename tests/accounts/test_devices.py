"""Devices as login sessions and push registrations (contract 11, 12)."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.models import Device
from tests.conftest import PASSWORD, client_for, session_tokens
from tests.realtime.test_consumer import TIMEOUT, open_socket


def device_of(tokens):
    from rest_framework_simplejwt.tokens import AccessToken

    return Device.objects.get(pk=AccessToken(tokens["token"])["dev"])


def age(device, hours):
    Device.objects.filter(pk=device.pk).update(created_at=timezone.now() - timedelta(hours=hours))


@pytest.fixture
def phone(user):
    tokens = session_tokens(user, name="Pixel", platform="android", app_version="1.2.0")
    age(device_of(tokens), 48)  # an established session
    return tokens


def test_devices_list_most_recently_seen_first_with_the_current_one_marked(user, phone):
    tablet = session_tokens(user, name="iPad", platform="ios")
    Device.objects.filter(pk=device_of(phone).pk).update(last_seen_at=timezone.now() - timedelta(days=1))
    response = client_for(user, tablet).get("/v1/devices")
    assert response.status_code == 200
    devices = response.json()["devices"]
    assert [d["name"] for d in devices] == ["iPad", "Pixel"]
    assert [d["current"] for d in devices] == [True, False]
    assert devices[1] | {"created_at": None, "last_seen_at": None} == {
        "device_id": f"d{device_of(phone).pk}",
        "name": "Pixel",
        "platform": "android",
        "app_version": "1.2.0",
        "created_at": None,
        "last_seen_at": None,
        "current": False,
        "push_enabled": False,
    }


def test_a_revoked_device_tokens_fail_at_their_next_use(user, phone):
    tablet = session_tokens(user)
    age(device_of(tablet), 48)
    assert client_for(user, tablet).delete(f"/v1/devices/d{device_of(phone).pk}").status_code == 204
    assert client_for(user, phone).get("/v1/user/me").status_code == 401  # no 15-minute tail
    refresh = client_for().post("/v1/auth/refresh", {"refresh_token": phone["refresh_token"]}, format="json")
    assert refresh.status_code == 401
    assert client_for(user, tablet).get("/v1/user/me").status_code == 200


def test_another_users_device_is_a_404(user, other_user, phone):
    response = client_for(other_user).delete(f"/v1/devices/d{device_of(phone).pk}")
    assert response.status_code == 404
    assert client_for(other_user).delete("/v1/devices/x1").status_code == 404
    assert client_for(user, phone).get("/v1/user/me").status_code == 200


def test_a_fresh_session_needs_the_password_to_revoke_others(user, phone):
    fresh = session_tokens(user)
    target = f"/v1/devices/d{device_of(phone).pk}"
    assert client_for(user, fresh).delete(target).status_code == 403
    assert client_for(user, fresh).delete(target, {"password": "wrong"}, format="json").status_code == 403
    assert client_for(user, fresh).post("/v1/devices/logout-others").status_code == 403
    assert client_for(user, phone).get("/v1/user/me").status_code == 200
    assert client_for(user, fresh).delete(target, {"password": PASSWORD}, format="json").status_code == 204
    assert client_for(user, phone).get("/v1/user/me").status_code == 401


def test_a_fresh_session_may_sign_itself_out(user):
    fresh = session_tokens(user)
    assert client_for(user, fresh).delete(f"/v1/devices/d{device_of(fresh).pk}").status_code == 204
    assert client_for(user, fresh).get("/v1/user/me").status_code == 401


def test_an_oauth_only_account_waits_out_the_fresh_window(user, phone):
    user.set_unusable_password()
    user.save()
    fresh = session_tokens(user)
    response = client_for(user, fresh).post("/v1/devices/logout-others")
    assert response.status_code == 403
    assert "24 hours" in response.json()["details"]


def test_logout_others_keeps_only_the_callers_device(user, phone):
    others = [session_tokens(user) for _ in range(3)]
    assert client_for(user, phone).post("/v1/devices/logout-others").status_code == 204
    assert list(Device.objects.filter(user=user)) == [device_of(phone)]
    for tokens in others:
        assert client_for(user, tokens).get("/v1/user/me").status_code == 401


def test_the_51st_login_revokes_the_least_recently_seen_device(user):
    from accounts.devices import device_open

    first = session_tokens(user)
    Device.objects.filter(pk=device_of(first).pk).update(last_seen_at=timezone.now() - timedelta(days=30))
    for _ in range(49):
        session_tokens(user)
    assert Device.objects.filter(user=user).count() == 50
    device_open(user=user, name="51st")
    assert Device.objects.filter(user=user).count() == 50
    assert client_for(user, first).get("/v1/user/me").status_code == 401


@pytest.mark.django_db(transaction=True)
async def test_a_revoked_devices_sockets_close_with_4401_and_only_its(user):
    phone, tablet = await database_sync_to_async(lambda: (session_tokens(user), session_tokens(user)))()
    phone_socket = await open_socket(token=phone["token"])
    tablet_socket = await open_socket(token=tablet["token"])
    from accounts.devices import device_revoke

    phone_device = await database_sync_to_async(device_of)(phone)
    await database_sync_to_async(device_revoke)(
        user=user, device_id=f"d{phone_device.pk}", current_device_id=phone_device.pk
    )
    assert (await phone_socket.receive_output(timeout=TIMEOUT))["code"] == 4401
    await tablet_socket.send_json_to({"type": "ping", "data": {"timestamp": 0}})
    assert (await tablet_socket.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
    await tablet_socket.disconnect()
    await phone_socket.disconnect()


# --- push registration --------------------------------------------------------------------


def test_push_registration_and_push_enabled_follow_the_servers_credentials(user, phone, settings):
    client = client_for(user, phone)
    response = client.put("/v1/devices/current/push", {"provider": "fcm", "token": "tok-1"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"device_id": f"d{device_of(phone).pk}", "push_enabled": False}  # no credentials
    settings.FCM_CREDENTIALS_FILE = "/some/file.json"
    assert client.get("/v1/devices").json()["devices"][0]["push_enabled"] is True
    assert client.delete("/v1/devices/current/push").status_code == 204
    assert client.get("/v1/devices").json()["devices"][0]["push_enabled"] is False
    assert device_of(phone).push_token == ""


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "fcm"},
        {"provider": "gcm", "token": "t"},
        {"provider": "fcm", "token": "x" * 4097},
        {"provider": "apns", "token": "t", "voip_token": "x" * 4097},
        {"provider": "apns", "token": "t", "call_push": "ring"},
        {"provider": "fcm", "token": "t", "extra": 1},
    ],
)
def test_bad_push_registrations_are_400(user, phone, body):
    response = client_for(user, phone).put("/v1/devices/current/push", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_a_4_kib_token_is_accepted(user, phone):
    token = "x" * 4096
    response = client_for(user, phone).put(
        "/v1/devices/current/push", {"provider": "fcm", "token": token}, format="json"
    )
    assert response.status_code == 200
    assert device_of(phone).push_token == token


def test_a_token_registered_by_another_device_moves_to_this_one(user, other_user, phone):
    client_for(user, phone).put(
        "/v1/devices/current/push", {"provider": "apns", "token": "shared", "voip_token": "voip"}, format="json"
    )
    new_owner = session_tokens(other_user)
    client_for(other_user, new_owner).put(
        "/v1/devices/current/push", {"provider": "apns", "token": "shared", "voip_token": "voip"}, format="json"
    )
    assert device_of(phone).push_token == "" and device_of(phone).voip_token == ""
    assert device_of(new_owner).push_token == "shared"


def test_a_revoked_device_loses_its_push_registration(user, phone):
    client_for(user, phone).put("/v1/devices/current/push", {"provider": "fcm", "token": "gone"}, format="json")
    other = session_tokens(user)
    age(device_of(other), 48)
    client_for(user, other).delete(f"/v1/devices/d{device_of(phone).pk}")
    assert not Device.objects.filter(push_token="gone").exists()


# --- sessions opened by logins ------------------------------------------------------------


def test_login_opens_a_device_named_by_the_app_and_refresh_keeps_it(user):
    body = {"username": user.username, "password": PASSWORD, "device": {"name": "Pixel 9", "platform": "android"}}
    login = client_for().post("/v1/auth/login", body, format="json").json()
    device = device_of(login)
    assert login["device_id"] == f"d{device.pk}"
    assert (device.name, device.platform) == ("Pixel 9", "android")
    refreshed = client_for().post("/v1/auth/refresh", {"refresh_token": login["refresh_token"]}, format="json")
    assert device_of(refreshed.json()) == device


def test_register_opens_a_device_and_a_bad_device_is_400(db):
    body = {"username": "newbie", "password": PASSWORD, "email": "newbie@example.com"}
    bad = client_for().post("/v1/auth/register", {**body, "device": {"platform": "toaster"}}, format="json")
    assert bad.status_code == 400
    created = client_for().post("/v1/auth/register", body, format="json")
    assert created.status_code == 201
    assert created.json()["device_id"] == f"d{device_of(created.json()).pk}"


def test_a_pair_from_before_devices_gets_a_device_at_its_refresh(user):
    from accounts.tokens import token_pair_for

    legacy = token_pair_for(user)
    refreshed = client_for().post("/v1/auth/refresh", {"refresh_token": legacy["refresh_token"]}, format="json")
    assert device_of(refreshed.json()).user == user


def test_password_change_keeps_only_the_callers_device(user, phone):
    other = session_tokens(user)
    response = client_for(user, phone).post(
        "/v1/auth/password/change", {"old_password": PASSWORD, "new_password": "An0ther-secret!"}, format="json"
    )
    assert response.status_code == 200
    assert device_of(response.json()) == device_of(phone)
    assert list(Device.objects.filter(user=user)) == [device_of(phone)]
    assert client_for(user, other).get("/v1/user/me").status_code == 401


def test_a_ban_revokes_every_device(user, phone):
    from accounts.services import user_mark_banned

    user_mark_banned(user=user, reason="spam")
    assert not Device.objects.filter(user=user).exists()
