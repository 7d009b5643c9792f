"""TOTP two-factor login for staff in the admin (django-otp, issue 19): through the real admin
login with the Django test client, with codes computed as an authenticator app does."""

import re
import time
from base64 import b32decode
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from moderation import services
from tests.accounts.test_auth import assert_error, login
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(db):
    return services.moderator_grant(actor="cli:root", user=make_user("mod"))


def code(key, at=None):
    """The code an authenticator app shows for key (bytes) at a time (now by default): RFC 6238."""
    generator = TOTP(key, step=30, t0=0, digits=6)
    if at is not None:
        generator.time = at
    return f"{generator.token():06d}"


def other_code(key):
    right = code(key)
    return next(c for c in ("000000", "111111", "222222") if c != right)


@pytest.fixture
def enrolled(moderator):
    """The moderator with a confirmed device; returns its secret."""
    device = TOTPDevice.objects.create(user=moderator, name="phone", confirmed=True)
    return device.bin_key


def admin_login(client, token="", password=PASSWORD, username="mod"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password, "otp_token": token})


def logged_in(client):
    return client.get("/admin/").status_code == 200


class TestLogin:
    def test_a_right_code_logs_in(self, enrolled):
        client = Client()
        response = admin_login(client, code(enrolled))
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert logged_in(client)

    @pytest.mark.parametrize("token", ["", "wrong"])
    def test_a_missing_or_wrong_code_is_refused(self, enrolled, token):
        client = Client()
        page = admin_login(client, other_code(enrolled) if token else "")
        assert page.status_code == 200 and "two-factor code if your account has one" in page.content.decode()
        assert "_auth_user_id" not in client.session and not logged_in(client)

    def test_a_wrong_password_with_the_right_code_is_refused(self, enrolled):
        client = Client()
        assert admin_login(client, code(enrolled), password="wrong-password").status_code == 200
        assert not logged_in(client)

    def test_a_code_is_accepted_once(self, enrolled):
        token = code(enrolled)
        assert admin_login(Client(), token).status_code == 302
        replay = Client()
        assert admin_login(replay, token).status_code == 200
        assert not logged_in(replay)

    def test_an_older_code_than_the_last_accepted_is_refused(self, enrolled):
        now = time.time()
        assert admin_login(Client(), code(enrolled)).status_code == 302
        assert admin_login(Client(), code(enrolled, now - 30)).status_code == 200  # within tolerance, but older

    def test_wrong_codes_count_in_the_login_lockout(self, enrolled, api):
        client = Client()
        for _ in range(10):
            assert admin_login(client, other_code(enrolled)).status_code == 200
        page = admin_login(client, code(enrolled))
        assert "Too many failed logins" in page.content.decode()
        assert not logged_in(client)
        assert_error(login(api, username="mod"), 429)  # the same counters as the API's logins

    def test_a_right_code_takes_its_count_back(self, enrolled):
        for _ in range(9):
            admin_login(Client(), other_code(enrolled))
        assert admin_login(Client(), code(enrolled)).status_code == 302
        client = Client()
        page = admin_login(client, other_code(enrolled))  # the 10th failure is answered, not locked
        assert "Too many failed logins" not in page.content.decode()

    def test_without_a_device_the_password_is_enough(self, moderator):
        client = Client()
        assert admin_login(client).status_code == 302 and logged_in(client)

    def test_a_session_without_the_code_is_sent_to_log_in(self, moderator, enrolled):
        client = Client()
        client.force_login(moderator)  # a session from before the device, or made without it
        response = client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    def test_the_api_login_of_staff_needs_no_code(self, enrolled, api):
        assert login(api, username="mod").status_code == 200


def enrolment_secret(page):
    uri = re.search(r'id="totp-uri">([^<]+)<', page.content.decode()).group(1).replace("&amp;", "&")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    query = parse_qs(parsed.query)
    assert query["issuer"] == ["imserver"] and parsed.path == "/imserver%3Amod"
    return b32decode(query["secret"][0])


class TestEnrolment:
    @pytest.fixture
    def client(self, moderator):
        client = Client()
        assert admin_login(client).status_code == 302
        return client

    def test_enrol_then_the_login_asks_for_the_code(self, client, moderator):
        page = client.get("/admin/two-factor/")
        assert page.status_code == 200 and 'src="data:image/svg+xml;base64,' in page.content.decode()
        key = enrolment_secret(page)
        assert enrolment_secret(client.get("/admin/two-factor/")) == key  # the same secret while it waits
        response = client.post("/admin/two-factor/", {"otp_token": code(key)})
        assert response.status_code == 302 and logged_in(client)  # this session is verified
        assert TOTPDevice.objects.get(user=moderator).confirmed
        assert "Two-factor authentication is on" in client.get("/admin/two-factor/").content.decode()

        client.logout()
        assert admin_login(client).status_code == 200  # the password alone no longer does
        assert admin_login(client, code(key)).status_code == 200  # the enrolment's code was used
        assert admin_login(client, code(key, time.time() + 30)).status_code == 302  # the next one

    def test_a_wrong_enrolment_code_counts_in_the_lockout(self, client, moderator, api):
        key = enrolment_secret(client.get("/admin/two-factor/"))
        for _ in range(10):
            page = client.post("/admin/two-factor/", {"otp_token": other_code(key)})
            assert "not the current one" in page.content.decode()
        page = client.post("/admin/two-factor/", {"otp_token": code(key)})
        assert "Too many failed logins" in page.content.decode()
        assert not TOTPDevice.objects.filter(user=moderator, confirmed=True).exists()


class TestRequired:
    @pytest.fixture(autouse=True)
    def _required(self, settings):
        settings.ADMIN_REQUIRE_2FA = True

    @pytest.mark.parametrize(
        "url", ["/admin/", "/admin/accounts/user/", "/admin/moderation/report/", "/admin/password_change/"]
    )
    def test_staff_without_a_device_are_sent_to_enrol(self, moderator, url):
        client = Client()
        assert admin_login(client).status_code == 302
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == "/admin/two-factor/"

    def test_enrolling_opens_the_admin(self, moderator):
        client = Client()
        admin_login(client)
        page = client.get("/admin/two-factor/")
        assert "Every staff account needs two-factor authentication" in page.content.decode()
        client.post("/admin/two-factor/", {"otp_token": code(enrolment_secret(page))})
        assert logged_in(client)

    def test_logout_stays_open(self, moderator):
        client = Client()
        admin_login(client)
        assert client.post("/admin/logout/").status_code == 200
        assert "_auth_user_id" not in client.session

    def test_enrolled_staff_log_in_with_the_code(self, enrolled):
        client = Client()
        assert admin_login(client, code(enrolled)).status_code == 302
        assert logged_in(client)
