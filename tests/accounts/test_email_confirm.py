"""Email ownership (contract 23): the code mailed at registration, over real SMTP to a local
aiosmtpd server; confirming, wrong, expired and burnt codes, throttling, and resending."""

import email
import re
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from accounts.models import EmailConfirmation, User
from tests.accounts.test_auth import assert_error, mail_sent
from tests.conftest import PASSWORD, client_for, make_user
from tests.servers import free_port

pytestmark = pytest.mark.django_db


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"

    def codes(self):
        return [
            re.search(r"\b(\d{6})\b", message.get_payload(decode=True).decode()).group(1)
            for _, message in self.messages
        ]


@pytest.fixture
def inbox(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    yield inbox
    controller.stop()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs the on-commit callbacks (the mail is queued after the commit), then waits for the mail."""

    class Committed:
        def __enter__(self):
            self.capture = django_capture_on_commit_callbacks(execute=True)
            self.capture.__enter__()

        def __exit__(self, *exc):
            self.capture.__exit__(*exc)
            mail_sent()

    return Committed()


def register(committed):
    body = {"username": "jane", "password": PASSWORD, "email": "jane@example.com"}
    with committed:
        response = client_for().post("/v1/auth/register", body, format="json")
    assert response.status_code == 201
    return User.objects.get(pk=response.json()["user_id"])


def confirm(user, code):
    return client_for(user).post("/v1/user/me/email/confirm", {"code": code}, format="json")


def resend(user, committed):
    with committed:
        return client_for(user).post("/v1/user/me/email/confirm/resend")


def verified(user):
    return client_for(user).get("/v1/user/me").json()["email_verified"]


def test_registration_mails_a_code_that_confirms_the_email_once(inbox, committed):
    jane = register(committed)
    assert [to for to, _ in inbox.messages] == [["jane@example.com"]]
    assert inbox.messages[0][1]["Subject"] == "Your imserver confirmation code"
    assert verified(jane) is False

    assert confirm(jane, inbox.codes()[0]).status_code == 204
    assert verified(jane) is True
    assert_error(confirm(jane, inbox.codes()[0]), 400)  # used up
    assert verified(jane) is True


def test_a_wrong_code_is_400_and_five_of_them_burn_the_code(inbox, committed):
    jane = register(committed)
    code = inbox.codes()[0]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert "code" in assert_error(confirm(jane, wrong), 400)["fields"]
    for _ in range(4):
        assert_error(confirm(jane, wrong), 400)
    assert_error(confirm(jane, code), 400)
    assert verified(jane) is False


@pytest.mark.parametrize("code", ["12345", "abcdef", ""])
def test_a_malformed_code_is_400(user, code):
    assert "code" in assert_error(confirm(user, code), 400)["fields"]


def test_an_expired_code_is_400(inbox, committed):
    jane = register(committed)
    EmailConfirmation.objects.filter(user=jane).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(confirm(jane, inbox.codes()[0]), 400)
    assert verified(jane) is False


def test_the_code_is_valid_thirty_minutes(inbox, committed):
    before = timezone.now()
    jane = register(committed)
    expires_at = EmailConfirmation.objects.get(user=jane).expires_at
    assert timedelta(minutes=30) <= expires_at - before <= timedelta(minutes=30, seconds=5)


def test_repeated_tries_are_throttled(inbox, committed, settings):
    jane = register(committed)
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "email_confirm": "2/hour"}
    assert_error(confirm(jane, "000000"), 400)
    assert_error(confirm(jane, "000001"), 400)
    response = confirm(jane, inbox.codes()[0])
    assert_error(response, 429)
    assert response.headers["Retry-After"]
    assert verified(jane) is False


def test_resend_mails_a_new_code_and_the_old_one_stops_working(inbox, committed):
    jane = register(committed)
    assert resend(jane, committed).status_code == 202
    first, second = inbox.codes()
    if first != second:  # one time in a million they are the same
        assert_error(confirm(jane, first), 400)
    assert confirm(jane, second).status_code == 204


def test_resend_after_confirmation_is_202_and_mails_nothing(inbox, committed):
    jane = register(committed)
    confirm(jane, inbox.codes()[0])
    assert resend(jane, committed).status_code == 202
    assert len(inbox.messages) == 1


def test_resends_are_throttled(inbox, committed, settings):
    jane = register(committed)
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "email_confirm_resend": "1/hour"}
    assert resend(jane, committed).status_code == 202
    assert_error(resend(jane, committed), 429)
    assert len(inbox.messages) == 2


def test_accounts_made_otherwise_start_unconfirmed(db):
    assert not make_user("admin-made").email_verified
