"""TOTP two-factor login for staff in the admin (django-otp, issue 19): through the real admin
login with the Django test client, with codes computed as an authenticator app does."""

import re
import time
from base64 import b32decode
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from moderation import services
from moderation.models import AuditEntry, SecurityPolicy
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


def enrolment_secret(page, username="mod"):
    uri = re.search(r'id="totp-uri">([^<]+)<', page.content.decode()).group(1).replace("&amp;", "&")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    query = parse_qs(parsed.query)
    assert query["issuer"] == ["imserver"] and parsed.path == f"/imserver%3A{username}"
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


@pytest.fixture
def root(db):
    """A superuser (no device), logged in to the admin with its password."""
    user = make_user("root")
    User.objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    client = Client()
    assert admin_login(client, username="root").status_code == 302
    return client


def set_policy(client, on, reason=""):
    data = {"reason": reason, **({"require_staff_2fa": "on"} if on else {})}
    return client.post("/admin/security/", data)


def confined_to_enrolment(client):
    response = client.get("/admin/")
    return response.status_code == 302 and response["Location"] == "/admin/two-factor/"


class TestPolicy:
    """A superuser requires two-factor of every staff account from the admin (issue 19)."""

    @pytest.fixture
    def mod_client(self, moderator):
        client = Client()
        assert admin_login(client).status_code == 302 and logged_in(client)
        return client

    def test_a_superuser_requires_it_at_once_and_it_is_audited(self, root, mod_client, moderator):
        assert set_policy(root, True, reason="after the phishing").status_code == 302
        assert confined_to_enrolment(mod_client)  # a session opened before the change
        assert confined_to_enrolment(root)  # the superuser without a device too
        assert "Every staff account needs two-factor" in mod_client.get("/admin/two-factor/").content.decode()
        entry = AuditEntry.objects.get(action="policy_change")
        assert (entry.actor.username, entry.action, entry.target_type, entry.reason) == (
            "root",
            "policy_change",
            "policy",
            "after the phishing",
        )
        assert entry.target_repr == "staff two-factor required"
        assert timezone.now() - entry.created_at < timedelta(minutes=1)

    def test_enrolled_staff_keep_the_admin(self, root, enrolled):
        client = Client()
        assert admin_login(client, code(enrolled)).status_code == 302
        set_policy(root, True)
        assert logged_in(client)

    def test_turning_it_off_frees_staff_and_is_audited(self, root, mod_client):
        set_policy(root, True)
        enrolment_secret_of_root = enrolment_secret(root.get("/admin/two-factor/"), username="root")
        root.post("/admin/two-factor/", {"otp_token": code(enrolment_secret_of_root)})
        assert logged_in(root)
        assert set_policy(root, False, reason="rolled out by SSO instead").status_code == 302
        assert logged_in(mod_client)
        changes = AuditEntry.objects.filter(action="policy_change").order_by("pk")
        assert list(changes.values_list("target_repr", flat=True)) == [
            "staff two-factor required",
            "staff two-factor optional",
        ]

    def test_saving_what_is_set_logs_nothing(self, root):
        set_policy(root, False)
        assert not AuditEntry.objects.filter(action="policy_change").exists()

    def test_read_from_the_database_on_each_request(self, mod_client):
        """What another process writes holds at the next request here: no copy is kept."""
        SecurityPolicy.objects.create(pk=1, require_staff_2fa=True)
        assert confined_to_enrolment(mod_client)
        SecurityPolicy.objects.filter(pk=1).update(require_staff_2fa=False)
        assert logged_in(mod_client)

    def test_the_page_shows_the_changes(self, root):
        set_policy(root, True, reason="audit finding 7")
        page = root.get("/admin/security/")
        assert page.status_code == 302  # root has no device: enrolment first
        SecurityPolicy.objects.filter(pk=1).update(require_staff_2fa=False)
        page = root.get("/admin/security/").content.decode()
        assert 'id="policy-changes"' in page and "audit finding 7" in page and "root" in page
        assert 'id="security-policy-link"' in page
        audit_log = root.get("/admin/moderation/auditentry/?action__exact=policy_change")
        assert audit_log.status_code == 200 and "security policy" in audit_log.content.decode()

    def test_the_setting_forces_it_on(self, root, mod_client, settings):
        settings.ADMIN_REQUIRE_2FA = True
        assert confined_to_enrolment(mod_client)
        assert SecurityPolicy.objects.count() == 0  # whatever the policy says

    def test_the_page_says_when_the_setting_forces_it(self, root, settings):
        assert 'id="policy-forced"' not in root.get("/admin/security/").content.decode()
        settings.ADMIN_REQUIRE_2FA = True
        key = TOTPDevice.objects.create(user=User.objects.get(username="root"), name="phone", confirmed=True).bin_key
        client = Client()
        assert admin_login(client, code(key), username="root").status_code == 302
        assert 'id="policy-forced"' in client.get("/admin/security/").content.decode()


class TestPolicyIsSuperusersOnly:
    @pytest.mark.parametrize("method", ["get", "post"])
    def test_other_staff_get_403(self, moderator, method):
        client = Client()
        admin_login(client)
        response = getattr(client, method)("/admin/security/", {"require_staff_2fa": "on"})
        assert response.status_code == 403
        assert not SecurityPolicy.objects.exists()
        assert not AuditEntry.objects.filter(action="policy_change").exists()

    def test_even_with_every_permission(self, moderator):
        User.objects.get(pk=moderator.pk).user_permissions.set(Permission.objects.all())
        client = Client()
        admin_login(client)
        assert client.post("/admin/security/", {"require_staff_2fa": "on"}).status_code == 403
        assert not SecurityPolicy.objects.exists()

    def test_the_link_is_absent_for_other_staff(self, moderator):
        client = Client()
        admin_login(client)
        assert 'id="security-policy-link"' not in client.get("/admin/").content.decode()

    def test_anonymous_is_sent_to_log_in(self, db):
        response = Client().get("/admin/security/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    def test_the_service_refuses_other_staff(self, moderator):
        with pytest.raises(services.ModerationError):
            services.security_policy_set(actor=moderator, require_staff_2fa=True)
        assert not SecurityPolicy.objects.exists()
