"""The login lockout against other spellings of a name and against strangers (contract 23)."""

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError

from accounts import services
from accounts.models import PasswordResetCode, PasswordResetGuess
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


class ResetFlow:
    """Reset requests and confirmations from chosen addresses, with the mailed codes."""

    @pytest.fixture(autouse=True)
    def _limits(self, settings):
        settings.RATE_LIMITS_ENABLED = True

    def request_code(self, address, capture, **extra):
        before = len(mail.outbox)
        with capture(execute=True):
            passwords.password_reset_request(email="alice@example.com", address=address, **extra)
        mail_sent()
        return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1) if len(mail.outbox) > before else None

    def confirm(self, code, new="Brand-new-pass1", address=OWNER):
        passwords.password_reset_confirm(email="alice@example.com", code=code, new_password=new, address=address)


class TestResetCodesPerRequester(ResetFlow):
    """A stranger's reset requests neither consume nor void the owner's code (issue 19)."""

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


def wrong_code(*codes):
    return next(c for c in (f"{n:06d}" for n in range(10)) if c not in codes)


class TestResetGuessBudget(ResetFlow):
    """Wrong reset codes are counted per address and per email, never burn the owner's code, and
    stay bounded however many addresses guess (issue 19)."""

    def guess(self, address, code="000000"):
        """True: answered as a wrong code (400); False: refused (429)."""
        try:
            self.confirm(code, address=address)
        except Throttled as refused:
            assert refused.wait >= 1
            return False
        except ValidationError as wrong:
            assert "code" in wrong.detail
            return True
        raise AssertionError("the guess reset the password")

    def guess_until_refused(self, address, code):
        answered = 0
        while self.guess(address, code):
            answered += 1
        return answered

    def owner_resets(self, user, code):
        self.confirm(code, address=OWNER)
        user.refresh_from_db()
        assert user.check_password("Brand-new-pass1")

    def test_a_strangers_wrong_guesses_leave_the_owners_code(self, user, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        assert self.guess_until_refused(ATTACKER, wrong_code(owners)) == 5
        self.owner_resets(user, owners)

    def test_a_distributed_guesser_neither_burns_nor_blocks_the_owners_code(
        self, user, django_capture_on_commit_callbacks
    ):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        answered = sum(self.guess_until_refused(f"203.0.113.{n}", wrong_code(owners)) for n in range(20))
        assert answered == 10  # the per-email budget, spent by the first two addresses
        assert not self.guess("192.0.2.1", wrong_code(owners))  # a fresh address is refused past it
        self.owner_resets(user, owners)  # the address that asked, with no wrong guess, is not

    def test_past_the_budget_an_address_that_guessed_wrong_is_refused(self, user, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        assert self.guess(OWNER, wrong_code(owners))  # the owner's typo
        for n in range(3):
            self.guess_until_refused(f"203.0.113.{n}", wrong_code(owners))
        assert not self.guess(OWNER, owners)
        assert PasswordResetCode.objects.filter(used_at__isnull=True).count() == 1  # still live

    def test_the_brute_force_bound(self, user, settings, django_capture_on_commit_callbacks):
        """However many addresses guess, and with live codes asked for from the attacker's own
        addresses, a code lifetime sees at most the per-email budget of guesses (each against at
        most the 5 live codes) plus one guess per address that asked for a live code (at that code)."""
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        asked = [f"198.18.0.{n}" for n in range(settings.PASSWORD_RESET_MAX_LIVE_CODES)]
        codes = [owners, *(self.request_code(address, django_capture_on_commit_callbacks) for address in asked)]
        assert codes[-1] is None  # the cap: 5 live codes at once
        asked, codes = asked[:-1], codes[:-1]
        wrong = wrong_code(*codes)
        answered = sum(self.guess_until_refused(f"203.0.113.{n}", wrong) for n in range(50))
        answered += sum(self.guess_until_refused(address, wrong) for address in [*asked, OWNER])
        assert answered == settings.PASSWORD_RESET_GUESSES_PER_EMAIL + len(asked) + 1
        assert PasswordResetGuess.objects.count() == answered

    def test_past_the_budget_an_address_may_try_only_its_own_code(self, user, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        self.request_code(ATTACKER, django_capture_on_commit_callbacks)
        for n in range(2):
            self.guess_until_refused(f"203.0.113.{n}", wrong_code(owners))
        assert self.guess(ATTACKER, owners)  # the owner's code, tried from elsewhere: wrong here
        self.owner_resets(user, owners)

    def test_guesses_count_over_a_code_lifetime(self, user, settings, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        self.guess_until_refused(ATTACKER, wrong_code(owners))
        first = PasswordResetGuess.objects.order_by("created_at").first()
        PasswordResetGuess.objects.filter(pk=first.pk).update(
            created_at=first.created_at - settings.PASSWORD_RESET_CODE_TTL
        )
        assert self.guess(ATTACKER, wrong_code(owners))  # one guess left the window: one more answered
        assert not self.guess(ATTACKER, wrong_code(owners))
        assert PasswordResetGuess.objects.count() == 5  # the old one was dropped

    def test_a_reset_clears_the_guesses(self, user, django_capture_on_commit_callbacks):
        owners = self.request_code(OWNER, django_capture_on_commit_callbacks)
        self.guess(ATTACKER, wrong_code(owners))
        self.owner_resets(user, owners)
        assert not PasswordResetGuess.objects.exists()

    @pytest.mark.skipif(not is_postgres(), reason="concurrent transactions")
    @pytest.mark.django_db(transaction=True)
    def test_concurrent_guesses_stay_within_the_budget(self, user):
        """20 wrong guesses in flight at once from 20 addresses: each is counted before the next is
        judged (the account's row locked), so 10 are answered and 10 refused."""
        PasswordResetCode.objects.create(
            user=user,
            code_hash=passwords.code_hash("123456"),
            expires_at=timezone.now() + timedelta(minutes=30),
            requested_from=OWNER,
        )
        outcomes, start = [], threading.Barrier(20)

        def guess(n):
            start.wait()
            try:
                outcomes.append(self.guess(f"203.0.113.{n}", "654321"))
            finally:
                connection.close()

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == [False] * 10 + [True] * 10
        self.owner_resets(user, "123456")

    def test_guesses_without_a_live_code_count_nothing(self, user):
        for _ in range(20):
            assert self.guess(ATTACKER)
        assert not PasswordResetGuess.objects.exists()


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
