"""Idempotent retries (contract 21): Idempotency-Key on every mutating /v1 request."""

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from chat.models import Message
from chat.views import ConversationViewSet
from groups.models import Group
from imserver.models import IdempotencyKey
from media.models import Media
from tests.conftest import PASSWORD, client_for, is_postgres, make_user, private_chat
from tests.media.conftest import upload
from tests.media.files import image_bytes

KEY = "3f2c9a7e-retry-1"


def create_group(client, key=KEY, name="Hikers", **extra):
    body = {"type": "group", "name": name, "members": []}
    return client.post("/v1/conversations", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


@pytest.mark.django_db
class TestReplay:
    def test_a_repeat_gets_the_stored_answer_and_nothing_is_done_twice(self, user_api):
        first = create_group(user_api)
        assert first.status_code == 201
        assert "Idempotent-Replayed" not in first
        repeat = create_group(user_api)
        assert repeat.status_code == 201
        assert repeat["Idempotent-Replayed"] == "true"
        assert repeat.json() == first.json()
        assert Group.objects.count() == 1

    def test_without_a_key_each_request_acts(self, user_api):
        body = {"type": "group", "name": "Hikers", "members": []}
        user_api.post("/v1/conversations", body, format="json")
        user_api.post("/v1/conversations", body, format="json")
        assert Group.objects.count() == 2

    def test_keys_are_per_user(self, user_api, other_user):
        create_group(user_api)
        other = create_group(client_for(other_user))
        assert other.status_code == 201
        assert "Idempotent-Replayed" not in other
        assert Group.objects.count() == 2

    def test_a_different_body_under_the_same_key_is_422(self, user_api):
        create_group(user_api)
        response = create_group(user_api, name="Climbers")
        assert response.status_code == 422
        assert response.json()["code"] == 422
        assert Group.objects.count() == 1

    def test_another_path_under_the_same_key_is_422(self, user_api, user, other_user):
        create_group(user_api)
        conversation = private_chat(user, other_user)
        url = f"/v1/conversations/c{conversation.pk}/messages"
        response = user_api.post(url, {"type": "text", "content": "hi"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
        assert response.status_code == 422
        assert not Message.objects.exists()

    def test_error_answers_are_stored_too(self, user_api):
        first = create_group(user_api, name="")
        assert first.status_code == 400
        repeat = create_group(user_api, name="")
        assert repeat.status_code == 400
        assert repeat["Idempotent-Replayed"] == "true"
        assert repeat.json() == first.json()

    def test_a_server_error_is_not_stored_and_its_effects_are_rolled_back(self, user_api, monkeypatch):
        original = ConversationViewSet.create

        def create_then_fail(self, request):
            original(self, request)
            raise RuntimeError("crash after the group was written")

        monkeypatch.setattr(ConversationViewSet, "create", create_then_fail)
        assert create_group(user_api).status_code == 500
        assert Group.objects.count() == 0
        assert not IdempotencyKey.objects.exists()
        monkeypatch.setattr(ConversationViewSet, "create", original)
        retry = create_group(user_api)
        assert retry.status_code == 201
        assert "Idempotent-Replayed" not in retry
        assert Group.objects.count() == 1

    def test_a_401_is_not_stored(self, api, user):
        assert create_group(api).status_code == 401
        assert not IdempotencyKey.objects.exists()

    @pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
    def test_a_malformed_key_is_400(self, user_api, key):
        response = create_group(user_api, key=key)
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["details"]
        assert Group.objects.count() == 0

    def test_send_forward_and_invite_retries_act_once(self, user, other_user):
        conversation = private_chat(user, other_user)
        client = client_for(user)
        body = {"type": "text", "content": "hello"}
        url = f"/v1/conversations/c{conversation.pk}/messages"
        answers = [client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="send-1") for _ in range(2)]
        assert answers[0].json() == answers[1].json()
        assert Message.objects.filter(conversation=conversation).count() == 1

        group_id = create_group(client).json()["target_id"]
        newcomer = make_user("nina")
        invite = {"user_ids": [str(newcomer.pk)]}
        url = f"/v1/groups/{group_id}/members"
        answers = [client.post(url, invite, format="json", HTTP_IDEMPOTENCY_KEY="invite-1") for _ in range(2)]
        assert answers[0].json() == answers[1].json() == {"success": True, "invited_users": [str(newcomer.pk)]}
        assert answers[1]["Idempotent-Replayed"] == "true"

    def test_an_upload_retry_stores_one_file(self, user_api):
        data = image_bytes()
        answers = [
            user_api.post(
                "/v1/media/upload",
                {"type": "image", "file": upload(data, "photo.png")},
                format="multipart",
                HTTP_IDEMPOTENCY_KEY="upload-1",
            )
            for _ in range(2)
        ]
        assert answers[0].status_code == 201
        assert answers[1].json() == answers[0].json()
        assert answers[1]["Idempotent-Replayed"] == "true"
        assert Media.objects.count() == 1

    def test_register_and_login_are_keyed_by_address(self, api, db):
        body = {"username": "johndoe", "password": PASSWORD, "email": "john.doe@example.com", "nickname": "John"}
        first = api.post("/v1/auth/register", body, format="json", HTTP_IDEMPOTENCY_KEY="reg-1")
        repeat = api.post("/v1/auth/register", body, format="json", HTTP_IDEMPOTENCY_KEY="reg-1")
        assert first.status_code == 201
        assert repeat.json() == first.json()
        assert repeat["Idempotent-Replayed"] == "true"
        other_address = api.post(
            "/v1/auth/register", body, format="json", HTTP_IDEMPOTENCY_KEY="reg-1", REMOTE_ADDR="10.9.8.7"
        )
        assert other_address.status_code == 409  # not a replay: it ran, and the name is taken
        assert "Idempotent-Replayed" not in other_address
        assert IdempotencyKey.objects.get(key="reg-1", scope="anonymous:127.0.0.1")


@pytest.mark.django_db
class TestLifetime:
    def test_a_key_past_24_hours_is_free_again(self, user_api):
        create_group(user_api)
        IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
        again = create_group(user_api)
        assert again.status_code == 201
        assert "Idempotent-Replayed" not in again
        assert Group.objects.count() == 2

    def test_a_claim_whose_holder_died_is_taken_over(self, user_api, user):
        # What a crash between claiming and committing leaves: a claim, and nothing else.
        IdempotencyKey.objects.create(
            scope=f"user:{user.pk}",
            key=KEY,
            method="POST",
            path="/v1/conversations",
            claim="00000000-0000-0000-0000-000000000001",
            locked_until=timezone.now() - timedelta(seconds=1),
        )
        response = create_group(user_api)
        assert response.status_code == 201
        assert Group.objects.count() == 1
        assert create_group(user_api)["Idempotent-Replayed"] == "true"

    def test_a_running_claim_answers_409(self, user_api, user):
        IdempotencyKey.objects.create(
            scope=f"user:{user.pk}",
            key=KEY,
            method="POST",
            path="/v1/conversations",
            claim="00000000-0000-0000-0000-000000000001",
            locked_until=timezone.now() + timedelta(seconds=60),
        )
        response = create_group(user_api)
        assert response.status_code == 409
        assert Group.objects.count() == 0

    def test_the_daily_prune_deletes_expired_keys(self, user_api, capsys):
        create_group(user_api)
        create_group(user_api, key="fresh")
        IdempotencyKey.objects.filter(key=KEY).update(created_at=timezone.now() - timedelta(hours=25))
        call_command("prune_idempotency_keys")
        assert "Deleted 1 idempotency keys." in capsys.readouterr().out
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="concurrent transactions: needs DATABASE_URL=postgres://")
def test_concurrent_duplicates_act_once():
    owner = make_user("owner")
    answers, barrier = [], threading.Barrier(6)

    def attempt():
        try:
            client = client_for(owner)
            barrier.wait()
            response = create_group(client, key="together")
            answers.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Group.objects.count() == 1
    created = [body for status, body in answers if status == 201]
    assert created and all(body == created[0] for body in created)
    assert {status for status, _ in answers} <= {201, 409}
