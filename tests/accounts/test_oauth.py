"""OAuth login with each provider's HTTP endpoints stubbed (responses)."""

import json
import time
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from accounts.models import User
from accounts.services import user_mark_banned
from tests.accounts.test_auth import assert_error
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

GOOGLE_TOKEN = "https://accounts.google.com/o/oauth2/token"
GOOGLE_USERINFO = "https://www.googleapis.com/oauth2/v3/userinfo"
GITHUB_TOKEN = "https://github.com/login/oauth/access_token"
GITHUB_USER = "https://api.github.com/user"
GITHUB_EMAILS = "https://api.github.com/user/emails"
APPLE_TOKEN = "https://appleid.apple.com/auth/token"
APPLE_KEYS = "https://appleid.apple.com/auth/keys"


@pytest.fixture(autouse=True)
def _providers(settings):
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = "google-client"
    settings.SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = "google-secret"
    settings.SOCIAL_AUTH_GITHUB_KEY = "github-client"
    settings.SOCIAL_AUTH_GITHUB_SECRET = "github-secret"


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def oauth(api, provider, **body):
    body.setdefault("code", "the-code")
    body.setdefault("redirect_uri", "app://callback")
    return api.post(f"/v1/auth/oauth/{provider}", body, format="json")


def google(mocked, sub="g-1", email="jane@gmail.com", verified=True, name="Jane Roe"):
    mocked.post(GOOGLE_TOKEN, json={"access_token": "g-token", "token_type": "Bearer", "expires_in": 3600})
    mocked.get(GOOGLE_USERINFO, json={"sub": sub, "email": email, "email_verified": verified, "name": name})


class TestGoogle:
    def test_new_identity_creates_user(self, api, mocked):
        google(mocked)
        response = oauth(api, "google", code_verifier="v" * 43)
        assert response.status_code == 200
        body = response.json()
        user = User.objects.get(pk=body["user_id"])
        assert body["username"] == user.username == "jane"
        assert user.email == "jane@gmail.com" and user.nickname == "Jane Roe"
        assert not user.has_usable_password()
        exchange = parse_qs(mocked.calls[0].request.body)
        assert exchange["code"] == ["the-code"]
        assert exchange["redirect_uri"] == ["app://callback"]
        assert exchange["code_verifier"] == ["v" * 43]
        assert exchange["client_id"] == ["google-client"]
        me = api.get("/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
        assert me.json()["user_id"] == body["user_id"]

    def test_returning_identity_logs_in_same_user(self, api, mocked):
        google(mocked)
        first = oauth(api, "google").json()["user_id"]
        second = oauth(api, "google").json()["user_id"]
        assert first == second
        assert User.objects.count() == 1

    def test_links_existing_account_by_verified_email(self, api, mocked):
        local = make_user("janelocal", email="Jane@Gmail.com", email_verified=True)
        google(mocked)
        assert oauth(api, "google").json()["user_id"] == str(local.pk)

    def test_a_local_account_that_never_confirmed_the_email_is_not_linked(self, api, mocked):
        """Contract 23: someone registered with the victim's address; the victim's Google login
        gets an account of its own, never the squatter's."""
        squatter = make_user("janelocal", email="jane@gmail.com")
        google(mocked)
        body = oauth(api, "google").json()
        assert body["user_id"] != str(squatter.pk)
        victim = User.objects.get(pk=body["user_id"])
        assert victim.email == "" and not victim.email_verified  # the address is taken, unconfirmed

    def test_unverified_email_is_not_linked(self, api, mocked):
        local = make_user("janelocal", email="jane@gmail.com")
        google(mocked, verified=False)
        body = oauth(api, "google").json()
        assert body["user_id"] != str(local.pk)
        assert User.objects.get(pk=body["user_id"]).email == ""

    def test_username_clash_gets_a_suffix(self, api, mocked):
        make_user("jane", email="someone@example.com")
        google(mocked)
        username = oauth(api, "google").json()["username"]
        assert username.startswith("jane_") and username != "jane"

    def test_never_picks_the_name_of_a_deleted_account(self, api, mocked):
        google(mocked, email="deleted-1@gmail.com")
        username = oauth(api, "google").json()["username"]
        assert username.startswith("deleted-1_")

    def test_bad_code_is_401_with_provider_reason(self, api, mocked):
        mocked.post(GOOGLE_TOKEN, status=400, json={"error": "invalid_grant", "error_description": "Bad Request"})
        body = assert_error(oauth(api, "google"), 401)
        assert "invalid_grant" in body["details"]

    def test_unreachable_provider_is_503(self, api, mocked):
        mocked.post(GOOGLE_TOKEN, body=requests.ConnectionError("down"))
        assert_error(oauth(api, "google"), 503)

    def test_provider_server_error_is_503(self, api, mocked):
        mocked.post(GOOGLE_TOKEN, status=502, body="bad gateway")
        assert_error(oauth(api, "google"), 503)

    def test_not_configured_is_503(self, api, settings):
        settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = None
        assert_error(oauth(api, "google"), 503)

    def test_banned_user_is_403(self, api, mocked):
        google(mocked)
        user = User.objects.get(pk=oauth(api, "google").json()["user_id"])
        user_mark_banned(user=user, reason="spam")
        assert_error(oauth(api, "google"), 403)

    def test_missing_code_is_400(self, api):
        assert "code" in assert_error(api.post("/v1/auth/oauth/google", {}, format="json"), 400)["fields"]


def test_unknown_provider_is_404(api, db):
    assert_error(oauth(api, "myspace"), 404)


class TestGithub:
    def stub(self, mocked, emails):
        mocked.post(GITHUB_TOKEN, json={"access_token": "gh-token", "token_type": "bearer"})
        mocked.get(GITHUB_USER, json={"id": 42, "login": "octocat", "email": None, "name": "Octo Cat"})
        mocked.get(GITHUB_EMAILS, json=emails)

    def test_new_user_with_verified_primary_email(self, api, mocked):
        self.stub(mocked, [{"email": "octo@github.com", "primary": True, "verified": True}])
        body = oauth(api, "github").json()
        user = User.objects.get(pk=body["user_id"])
        assert (user.username, user.email, user.nickname) == ("octocat", "octo@github.com", "Octo Cat")
        assert user.email_verified  # the provider vouches for it

    def test_links_by_verified_email(self, api, mocked):
        local = make_user("octolocal", email="octo@github.com", email_verified=True)
        self.stub(mocked, [{"email": "octo@github.com", "primary": True, "verified": True}])
        assert oauth(api, "github").json()["user_id"] == str(local.pk)

    def test_unverified_email_not_linked(self, api, mocked):
        local = make_user("octolocal", email="octo@github.com")
        self.stub(mocked, [{"email": "octo@github.com", "primary": True, "verified": False}])
        assert oauth(api, "github").json()["user_id"] != str(local.pk)

    def test_error_response_is_401(self, api, mocked):
        mocked.post(GITHUB_TOKEN, json={"error": "bad_verification_code", "error_description": "The code is wrong"})
        body = assert_error(oauth(api, "github"), 401)
        assert "bad_verification_code" in body["details"] or "code is wrong" in body["details"]


class TestApple:
    @pytest.fixture
    def apple(self, settings, mocked):
        signing = ec.generate_private_key(ec.SECP256R1())
        settings.SOCIAL_AUTH_APPLE_ID_CLIENT = "com.example.app"
        settings.SOCIAL_AUTH_APPLE_ID_TEAM = "TEAM123456"
        settings.SOCIAL_AUTH_APPLE_ID_KEY = "KEY1234567"
        settings.SOCIAL_AUTH_APPLE_ID_SECRET = signing.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        apple_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(apple_key.public_key()))
        jwk.update(kid="apple-kid", alg="RS256", use="sig")
        mocked.get(APPLE_KEYS, json={"keys": [jwk]})

        def issue(email_verified):
            claims = {
                "iss": "https://appleid.apple.com",
                "aud": "com.example.app",
                "sub": "001234.apple",
                "email": "tim@icloud.com",
                "email_verified": email_verified,
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
            }
            id_token = jwt.encode(claims, apple_key, algorithm="RS256", headers={"kid": "apple-kid"})
            mocked.post(APPLE_TOKEN, json={"access_token": "a-token", "token_type": "Bearer", "id_token": id_token})

        return issue

    def test_new_user(self, api, apple):
        apple("true")
        body = oauth(api, "apple")
        assert body.status_code == 200, body.content
        assert User.objects.get(pk=body.json()["user_id"]).email == "tim@icloud.com"

    def test_links_by_verified_email(self, api, apple):
        local = make_user("timlocal", email="tim@icloud.com", email_verified=True)
        apple(True)
        assert oauth(api, "apple").json()["user_id"] == str(local.pk)

    def test_unverified_not_linked(self, api, apple):
        local = make_user("timlocal", email="tim@icloud.com")
        apple("false")
        assert oauth(api, "apple").json()["user_id"] != str(local.pk)
