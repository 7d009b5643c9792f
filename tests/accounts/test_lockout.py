"""The login lockout against other spellings of a name and against strangers (contract 23)."""

import re

import pytest
from django.core import mail
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError

from accounts import services
from accounts.models import PasswordResetCode
from accounts.normalization import normalize
from accounts.services import passwords
from tests.accounts.test_auth import assert_error, mail_sent
from tests.accounts.test_delete import delete_me
from tests.conftest import PASSWORD, is_postgres, make_user, session_tokens

pytestmark = pytest.mark.django_db

ATTACKER, OWNER = "203.0.113.9", "198.51.100.20"


def fail_logins(username, address, times=10):
    for _ in range(times):
        with pytest.raises(AuthenticationFailed):
            services.user_login(username=username, password="wrong-password", address=address)


def login(username, address=ATTACKER):
    return services.user_login(username=username, password=PASSWORD, address=address)


def test_normalization():
    assert normalize("ＡＬＩＣＥ") == normalize("ALICE") == "alice"
    assert normalize("ſam") == "sam"
    assert normalize("alıce") != "alice"


class TestSpellings:
    # Every spelling either shares the bucket of the account it reaches or reaches no account.
    SPELLINGS = ["alice", "ALICE", "ＡＬＩＣＥ", "alıce", "ALİCE", "AlIcE"]

    @pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's iexact is what matches ı to I")
    def test_no_spelling_passes_the_lockout(self, user):
        fail_logins("alice", ATTACKER)
        for spelling in self.SPELLINGS:
            with pytest.raises((Throttled, AuthenticationFailed)):
                login(spelling)

    @pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's iexact is what matches ſ to S")
    def test_a_long_s_shares_the_bucket_of_the_account_it_reaches(self, db):
        sam = make_user("sam")
        assert login("ſam") == sam
        fail_logins("ſam", ATTACKER)
        for spelling in ["sam", "SAM", "ſam", "ＳＡＭ"]:
            with pytest.raises(Throttled):
                login(spelling)

    @pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's iexact is what matches ı to I")
    def test_reset_mail_per_email_counts_every_spelling(self, user, settings, django_capture_on_commit_callbacks):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "password_reset": "1/hour"}
        with django_capture_on_commit_callbacks() as queued:
            for spelling in ["alice@example.com", "ALICE@example.com", "alıce@example.com", "ＡＬＩＣＥ@example.com"]:
                passwords.password_reset_request(email=spelling, address=ATTACKER)
        assert len(queued) == 1


class TestTargetedLockouts:
    def test_strangers_failures_leave_the_owner_through(self, user):
        fail_logins("alice", ATTACKER)
        with pytest.raises(Throttled):
            login("alice", ATTACKER)
        assert login("alice", OWNER) == user

    def test_failures_from_all_addresses_lock_at_the_higher_bound(self, user, settings):
        settings.LOGIN_LOCKOUT_PER_USERNAME_ALL_ADDRESSES = 30
        for n in range(3):
            fail_logins("alice", f"203.0.113.{n}")
        with pytest.raises(Throttled):
            login("alice", OWNER)

    def test_strangers_reset_requests_leave_the_owners_mail(self, user, settings, django_capture_on_commit_callbacks):
        settings.RATE_LIMITS_ENABLED = True
        with django_capture_on_commit_callbacks() as attackers:
            for _ in range(6):
                passwords.password_reset_request(email="alice@example.com", address=ATTACKER)
        with django_capture_on_commit_callbacks() as owners:
            passwords.password_reset_request(email="alice@example.com", address=OWNER)
        assert (len(attackers), len(owners)) == (5, 1)


class TestResetCodesPerRequester:
    """A stranger's reset requests neither consume nor void the owner's code (issue 19)."""

    @pytest.fixture(autouse=True)
    def _limits(self, settings):
        settings.RATE_LIMITS_ENABLED = True

    def request_code(self, address, capture, **extra):
        before = len(mail.outbox)
        with capture(execute=True):
            passwords.password_reset_request(email="alice@example.com", address=address, **extra)
        mail_sent()
        return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1) if len(mail.outbox) > before else None

    def confirm(self, code, new="Brand-new-pass1"):
        passwords.password_reset_confirm(email="alice@example.com", code=code, new_password=new)

    def test_the_owners_code_outlives_a_strangers_requests(self, user, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        strangers = [self.request_code(ATTACKER, django_capture_on_commit_callbacks) for _ in range(5)]
        assert all(strangers)
        self.confirm(owners)
        user.refresh_from_db()
        assert user.check_password("Brand-new-pass1")
        with pytest.raises(ValidationError):  # using one code voided every other
            self.confirm(strangers[-1], new="Yet-another-pass2")

    def test_a_request_replaces_the_code_from_the_same_address(self, user, django_capture_on_commit_callbacks):
        first = self.request_code(OWNER, django_capture_on_commit_callbacks)
        second = self.request_code(OWNER, django_capture_on_commit_callbacks)
        if first != second:
            with pytest.raises(ValidationError):
                self.confirm(first)
        self.confirm(second)

    def test_the_owners_own_limit_still_holds(self, user, django_capture_on_commit_callbacks):
        codes = [self.request_code(OWNER, django_capture_on_commit_callbacks) for _ in range(6)]
        assert codes[-1] is None and all(codes[:5])

    def test_records_the_requester(self, api, user, other_user):
        token = session_tokens(other_user)["token"]
        body = {"email": "alice@example.com"}
        assert api.post("/v1/auth/password/reset", body, format="json", REMOTE_ADDR=OWNER).status_code == 202
        response = api.post(
            "/v1/auth/password/reset", body, format="json", REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert response.status_code == 202
        rows = PasswordResetCode.objects.order_by("pk").values_list("requested_from", "requested_by", "used_at")
        assert list(rows) == [(OWNER, None, None), (ATTACKER, other_user.pk, None)]

    def test_a_stale_token_does_not_fail_the_request(self, api, user):
        response = api.post(
            "/v1/auth/password/reset", {"email": "alice@example.com"}, format="json", HTTP_AUTHORIZATION="Bearer x.y.z"
        )
        assert response.status_code == 202

    def test_live_codes_from_other_addresses_are_capped(self, user, settings, django_capture_on_commit_callbacks):
        settings.PASSWORD_RESET_MAX_LIVE_CODES = 3
        codes = [self.request_code(f"203.0.113.{n}", django_capture_on_commit_callbacks) for n in range(4)]
        assert all(codes[:3]) and codes[3] is None  # a 4th address gets no code: guesses hit at most 3
        assert self.request_code("203.0.113.0", django_capture_on_commit_callbacks)  # a requester renews its own
        assert self.request_code(OWNER, django_capture_on_commit_callbacks, requester=user)  # the signed-in owner

    def test_a_wrong_guess_counts_against_every_live_code(self, user, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        self.request_code(ATTACKER, django_capture_on_commit_callbacks)
        wrong = "000000" if owners != "000000" else "111111"
        for _ in range(5):
            with pytest.raises(ValidationError):
                self.confirm(wrong)
        assert not PasswordResetCode.objects.filter(used_at__isnull=True).exists()


class TestPasswordOracles:
    """Password change and account deletion check a password: under the login lockout."""

    def test_password_change(self, user_api, user):
        change = {"old_password": "wrong-password", "new_password": "Brand-new-pass1"}
        for _ in range(10):
            assert_error(user_api.post("/v1/auth/password/change", change, format="json"), 400)
        change["old_password"] = PASSWORD
        assert_error(user_api.post("/v1/auth/password/change", change, format="json"), 429)
        with pytest.raises(Throttled):
            login("alice", "127.0.0.1")  # the same counter as logins from that address

    def test_account_deletion(self, user_api, user):
        for _ in range(10):
            assert_error(delete_me(user_api, {"password": "wrong-password"}), 400)
        assert_error(delete_me(user_api, {"password": PASSWORD}), 429)
        user.refresh_from_db()
        assert user.is_active

    def test_a_right_password_takes_back_its_count(self, user_api, user):
        for _ in range(9):
            assert_error(delete_me(user_api, {"password": "wrong-password"}), 400)
        change = {"old_password": PASSWORD, "new_password": "Brand-new-pass1"}
        assert user_api.post("/v1/auth/password/change", change, format="json").status_code == 200
        with pytest.raises(AuthenticationFailed):  # the 10th failure is still answered, not locked
            services.user_login(username="alice", password="wrong-password", address="127.0.0.1")
