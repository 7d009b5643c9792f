import base64
import json
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts import services
from accounts.models import PasswordResetCode, User
from accounts.services import passwords, user_mark_banned
from tests.conftest import PASSWORD, client_for, make_user

pytestmark = pytest.mark.django_db


def register(api, **overrides):
    body = {"username": "johndoe", "password": PASSWORD, "email": "john.doe@example.com", "nickname": "John"}
    body.update(overrides)
    return api.post("/v1/auth/register", body, format="json")


def login(api, username="alice", password=PASSWORD):
    return api.post("/v1/auth/login", {"username": username, "password": password}, format="json")


def assert_error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == status
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], str) and body["details"]
    return body


class TestRegister:
    def test_creates_account_and_returns_tokens(self, api):
        response = register(api)
        assert response.status_code == 201
        body = response.json()
        assert body["username"] == "johndoe"
        assert body["user_id"] == str(User.objects.get(username="johndoe").pk)
        me = client_for().get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
        assert me.status_code == 200
        assert me.json()["nickname"] == "John"
        assert RefreshToken(body["refresh_token"])["user_id"] == body["user_id"]

    def test_nickname_defaults_to_username(self, api):
        register(api, nickname="")
        assert User.objects.get(username="johndoe").nickname == "johndoe"

    @pytest.mark.parametrize("username", ["ab", "x" * 33, "john doe", "john@doe", "jöhn"])
    def test_username_rules(self, api, username):
        body = assert_error(register(api, username=username), 400)
        assert "username" in body["fields"]

    @pytest.mark.parametrize("username", ["a.b", "a-b", "a_b", "A1b2", "x" * 32, "deleted-me"])
    def test_username_allowed_characters(self, api, username):
        assert register(api, username=username).status_code == 201

    @pytest.mark.parametrize("username", ["deleted-1", "Deleted-42"])
    def test_names_of_deleted_accounts_are_reserved(self, api, username):
        body = assert_error(register(api, username=username), 400)
        assert body["fields"]["username"] == ["Usernames of the form deleted-<number> are reserved."]

    @pytest.mark.parametrize("password", ["short", "12345678901", "password123", "johndoe123"])
    def test_password_must_pass_validators(self, api, password):
        body = assert_error(register(api, password=password), 400)
        assert "password" in body["fields"]

    def test_email_must_be_valid(self, api):
        assert "email" in assert_error(register(api, email="not-an-email"), 400)["fields"]

    @pytest.mark.parametrize("missing", ["username", "password", "email"])
    def test_required_fields(self, api, missing):
        body = {"username": "johndoe", "password": PASSWORD, "email": "j@example.com"}
        del body[missing]
        assert missing in assert_error(api.post("/v1/auth/register", body, format="json"), 400)["fields"]

    def test_duplicate_username_case_insensitive_is_409(self, api):
        register(api)
        assert_error(register(api, username="JohnDoe", email="other@example.com"), 409)

    def test_duplicate_email_case_insensitive_is_409(self, api):
        register(api)
        assert_error(register(api, username="other", email="JOHN.DOE@example.com"), 409)

    def test_malformed_json_is_400(self, api):
        response = api.post("/v1/auth/register", "{not json", content_type="application/json")
        assert_error(response, 400)


class TestLogin:
    def test_returns_token_pair(self, api, user):
        response = login(api)
        assert response.status_code == 200
        body = response.json()
        assert body["user_id"] == str(user.pk) and body["username"] == "alice"
        assert AccessToken(body["token"])["user_id"] == str(user.pk)

    def test_username_is_case_insensitive(self, api, user):
        assert login(api, username="ALICE").status_code == 200

    def test_same_401_for_unknown_user_and_wrong_password(self, api, user):
        wrong = assert_error(login(api, password="nope-nope-nope"), 401)
        unknown = assert_error(login(api, username="nobody"), 401)
        assert wrong["details"] == unknown["details"]

    def test_banned_user_gets_403(self, api, user):
        user_mark_banned(user=user, reason="spam")
        assert_error(login(api), 403)

    def test_banned_user_with_wrong_password_gets_401(self, api, user):
        user_mark_banned(user=user, reason="spam")
        assert_error(login(api, password="wrong-password"), 401)

    def test_lockout_after_ten_failures_for_a_username(self, api, user):
        for _ in range(10):
            assert_error(login(api, password="wrong-password"), 401)
        response = login(api)  # even the right password is refused now
        assert_error(response, 429)
        assert int(response["Retry-After"]) > 0

    @pytest.mark.django_db(transaction=True)
    def test_concurrent_guesses_get_at_most_ten_answers(self, user, monkeypatch):
        """Each guess counts as a failure before its password is checked (contract 23): 30 guesses
        in flight at once, each slowed inside the check, get 10 answers and 20 lockouts."""
        from django.db import connection

        from accounts.services import login as login_service

        slow_check = login_service.check_password

        def checked_slowly(*args):
            threading.Event().wait(0.3)
            return slow_check(*args)

        monkeypatch.setattr(login_service, "check_password", checked_slowly)
        outcomes, start = [], threading.Barrier(30)

        def guess(n):
            start.wait()
            try:
                services.user_login(username="alice", password=f"guess-{n}", address="198.51.100.7")
                outcomes.append("in")
            except Throttled:
                outcomes.append(429)
            except Exception as error:
                outcomes.append(type(error).__name__)
            finally:
                connection.close()

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes, key=str) == sorted(["AuthenticationFailed"] * 10 + [429] * 20, key=str)

    def test_a_successful_login_takes_back_its_count(self, api, user):
        for _ in range(9):
            assert_error(login(api, password="wrong-password"), 401)
        for _ in range(5):
            assert login(api).status_code == 200  # successes do not move toward the lockout
        assert_error(login(api, password="wrong-password"), 401)  # the 10th failure is still answered
        assert_error(login(api), 429)

    def test_lockout_after_hundred_failures_from_an_address(self, api, db):
        for i in range(100):
            assert_error(login(api, username=f"nobody{i}", password="x"), 401)
        make_user("carol")
        assert_error(login(api, username="carol"), 429)


class TestRefreshAndLogout:
    def test_refresh_rotates(self, api, user):
        pair = login(api).json()
        response = api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
        assert response.status_code == 200
        new = response.json()
        assert set(new) == {"token", "refresh_token"}
        assert new["refresh_token"] != pair["refresh_token"]
        again = api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
        assert_error(again, 401)
        assert api.post("/v1/auth/refresh", {"refresh_token": new["refresh_token"]}, format="json").status_code == 200

    def test_access_token_cannot_refresh(self, api, user):
        pair = login(api).json()
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": pair["token"]}, format="json"), 401)

    def test_garbage_refresh_token(self, api, db):
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": "abc.def.ghi"}, format="json"), 401)
        assert_error(api.post("/v1/auth/refresh", {}, format="json"), 400)

    def test_logout_blacklists_refresh_token(self, api, user):
        pair = login(api).json()
        response = api.post("/v1/auth/logout", {"refresh_token": pair["refresh_token"]}, format="json")
        assert response.status_code == 204
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json"), 401)

    def test_refresh_of_banned_user_is_401(self, api, user):
        pair = login(api).json()
        user_mark_banned(user=user, reason="spam")
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json"), 401)


class TestAccessTokens:
    def test_missing_token(self, api, db):
        response = api.get("/v1/user/me")
        assert_error(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")

    @pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer not.a.jwt", "Token abc"])
    def test_malformed_header(self, api, db, header):
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=header), 401)

    def test_refresh_token_is_not_an_access_token(self, api, user):
        pair = login(api).json()
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {pair['refresh_token']}"), 401)

    def test_expired_token(self, api, user):
        token = AccessToken.for_user(user)
        token["ver"] = user.token_version
        token.set_exp(from_time=timezone.now() - timedelta(hours=1))
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {token}"), 401)

    def test_tampered_signature(self, api, user):
        token = login(api).json()["token"]
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["user_id"] = "999"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {header}.{forged}.{signature}"), 401)

    def test_alg_none(self, api, user):
        token = login(api).json()["token"]
        claims = token.split(".")[1]
        none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {none_header}.{claims}."), 401)

    def test_ban_revokes_access_tokens_at_once(self, api, user):
        token = login(api).json()["token"]
        assert api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
        user_mark_banned(user=user, reason="spam")
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {token}"), 401)

    def test_inactive_user(self, api, user):
        token = login(api).json()["token"]
        User.objects.filter(pk=user.pk).update(is_active=False)
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {token}"), 401)


class TestPasswordChange:
    def change(self, client, old=PASSWORD, new="An0ther-secret!"):
        return client.post("/v1/auth/password/change", {"old_password": old, "new_password": new}, format="json")

    def test_returns_new_pair_and_revokes_the_rest(self, api, user):
        old = login(api).json()
        client = client_for()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {old['token']}")
        response = self.change(client)
        assert response.status_code == 200
        new = response.json()
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {old['token']}"), 401)
        assert_error(api.post("/v1/auth/refresh", {"refresh_token": old["refresh_token"]}, format="json"), 401)
        assert api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {new['token']}").status_code == 200
        assert api.post("/v1/auth/refresh", {"refresh_token": new["refresh_token"]}, format="json").status_code == 200
        assert login(api, password="An0ther-secret!").status_code == 200

    def test_wrong_old_password(self, user_api):
        assert "old_password" in assert_error(self.change(user_api, old="wrong-one"), 400)["fields"]

    def test_weak_new_password(self, user_api):
        assert "new_password" in assert_error(self.change(user_api, new="123"), 400)["fields"]

    def test_needs_authentication(self, api, db):
        assert_error(self.change(api), 401)


def mail_sent():
    """Waits for the mail thread to send what was queued."""
    services.mail_sender.submit(int).result(timeout=5)


class TestPasswordReset:
    @pytest.fixture(autouse=True)
    def _on_commit(self, django_capture_on_commit_callbacks):
        self.committed = django_capture_on_commit_callbacks

    def request_code(self, api, email="alice@example.com"):
        with self.committed(execute=True):
            response = api.post("/v1/auth/password/reset", {"email": email}, format="json")
        assert response.status_code == 202
        mail_sent()
        return response

    def code_from_mail(self):
        import re

        return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)

    def confirm(self, api, code, email="alice@example.com", new="Brand-new-pass1"):
        body = {"email": email, "code": code, "new_password": new}
        return api.post("/v1/auth/password/reset/confirm", body, format="json")

    def test_unknown_email_is_202_and_sends_nothing(self, api, db):
        self.request_code(api, "nobody@example.com")
        assert mail.outbox == []

    def test_full_reset_revokes_tokens(self, api, user):
        token = login(api).json()["token"]
        self.request_code(api)
        assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
        response = self.confirm(api, self.code_from_mail())
        assert response.status_code == 204
        assert_error(api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {token}"), 401)
        assert login(api, password="Brand-new-pass1").status_code == 200
        assert_error(login(api), 401)

    def test_mail_goes_out_after_the_response(self, api, user, monkeypatch):
        release, sent = threading.Event(), []

        def slow_send_mail(**message):
            release.wait(timeout=5)
            sent.append(message["recipient_list"])

        monkeypatch.setattr(passwords, "send_mail", slow_send_mail)
        with self.committed(execute=True):
            assert api.post("/v1/auth/password/reset", {"email": "alice@example.com"}, format="json").status_code == 202
        assert sent == []  # the response did not wait for SMTP
        release.set()
        mail_sent()
        assert sent == [["alice@example.com"]]

    def test_nothing_is_sent_when_the_transaction_rolls_back(self, user):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.password_reset_request(email="alice@example.com", address="10.0.0.1")
            raise RuntimeError
        mail_sent()
        assert mail.outbox == []

    def test_code_is_single_use(self, api, user):
        self.request_code(api)
        code = self.code_from_mail()
        assert self.confirm(api, code).status_code == 204
        assert "code" in assert_error(self.confirm(api, code, new="Yet-another-pass2"), 400)["fields"]

    def test_wrong_code(self, api, user):
        self.request_code(api)
        code = self.code_from_mail()
        wrong = "000000" if code != "000000" else "111111"
        assert_error(self.confirm(api, wrong), 400)

    def test_expired_code(self, api, user):
        self.request_code(api)
        PasswordResetCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert_error(self.confirm(api, self.code_from_mail()), 400)

    def test_repeated_wrong_guesses_are_refused_and_void_nothing(self, api, user):
        self.request_code(api)
        code = self.code_from_mail()
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            assert_error(self.confirm(api, wrong), 400)
        response = self.confirm(api, code)
        assert_error(response, 429)
        assert 0 < int(response["Retry-After"]) <= 30 * 60
        elsewhere = client_for()
        body = {"email": "alice@example.com", "code": code, "new_password": "Brand-new-pass1"}
        response = elsewhere.post("/v1/auth/password/reset/confirm", body, format="json", REMOTE_ADDR="10.0.0.9")
        assert response.status_code == 204

    def test_repeated_confirms_are_throttled(self, api, user, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "password_reset_confirm": "3/hour"}
        for _ in range(3):
            assert_error(self.confirm(api, "123456"), 400)
        response = self.confirm(api, "123456")
        assert_error(response, 429)
        assert int(response["Retry-After"]) > 0

    def test_weak_new_password(self, api, user):
        self.request_code(api)
        assert "new_password" in assert_error(self.confirm(api, self.code_from_mail(), new="123"), 400)["fields"]


class TestRateLimits:
    def test_register_is_limited_per_address(self, api, settings, db):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": "2/hour"}
        assert register(api, username="one", email="one@example.com").status_code == 201
        assert register(api, username="two", email="two@example.com").status_code == 201
        response = register(api, username="three", email="three@example.com")
        assert_error(response, 429)
        assert int(response["Retry-After"]) > 0
        other = client_for()
        response = other.post(
            "/v1/auth/register",
            {"username": "four", "password": PASSWORD, "email": "four@example.com"},
            format="json",
            REMOTE_ADDR="10.0.0.9",
        )
        assert response.status_code == 201

    def test_login_is_limited_per_username(self, api, user, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": "3/minute"}
        for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            body = {"username": "alice", "password": PASSWORD}
            assert api.post("/v1/auth/login", body, format="json", REMOTE_ADDR=address).status_code == 200
        response = api.post(
            "/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.4"
        )
        assert_error(response, 429)

    def test_forwarded_for_only_from_trusted_proxies(self, api, user, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "register": "1/hour"}
        settings.TRUSTED_PROXIES = ["10.1.0.0/16"]

        def attempt(name, remote, forwarded):
            body = {"username": name, "password": PASSWORD, "email": f"{name}@example.com"}
            return api.post(
                "/v1/auth/register", body, format="json", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded
            )

        # Behind the trusted proxy, each forwarded client has its own budget.
        assert attempt("via1", "10.1.0.5", "203.0.113.1").status_code == 201
        assert attempt("via2", "10.1.0.5", "203.0.113.2").status_code == 201
        # An untrusted sender cannot pick its own identity with the header.
        assert attempt("direct1", "198.51.100.7", "203.0.113.3").status_code == 201
        assert attempt("direct2", "198.51.100.7", "203.0.113.4").status_code == 429


class TestRateLimitsInServices:
    """The per-username and per-email limits hold whoever calls the service."""

    @pytest.fixture(autouse=True)
    def _limits(self, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {
            **settings.RATE_LIMITS,
            "login": "1/minute",
            "password_reset": "1/hour",
        }

    def test_login(self, user):
        services.user_login(username="alice", password=PASSWORD, address="10.0.0.1")
        with pytest.raises(Throttled):
            services.user_login(username="ALICE", password=PASSWORD, address="10.0.0.2")

    def test_password_reset_is_dropped_silently(self, user, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks() as queued:
            services.password_reset_request(email="alice@example.com", address="10.0.0.1")
            services.password_reset_request(email="Alice@example.com", address="10.0.0.1")
        assert len(queued) == 1
