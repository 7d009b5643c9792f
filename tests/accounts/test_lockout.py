"""The login lockout against other spellings of a name and against strangers (contract 23)."""

import pytest
from rest_framework.exceptions import AuthenticationFailed, Throttled

from accounts import services
from accounts.normalization import normalize
from accounts.services import passwords
from tests.accounts.test_auth import assert_error
from tests.accounts.test_delete import delete_me
from tests.conftest import PASSWORD, is_postgres, make_user

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
