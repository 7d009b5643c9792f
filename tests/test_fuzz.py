"""Property-based fuzzing of every operation in the served OpenAPI schema (schemathesis):
no 5xx, no response that contradicts the schema, no operation that works without auth, and no
request over 2 s of CPU (contract 23; uploads have their own corpus: tests/media/test_fuzz_uploads.py)."""

import time

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance, status_code_conformance

from accounts.tokens import token_pair_for
from tests import fuzzing
from tests.conftest import make_user

# OAuth exchanges the code with the provider, which is not configured here (503, as the
# contract says): tests/accounts/test_oauth.py covers it with the providers stubbed.
schema = schemathesis.openapi.from_wsgi("/v1/schema/?format=json", get_wsgi_application()).exclude(
    path="/v1/auth/oauth/{provider}"
)
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # uploads' temp files


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The requests run inside the test's transaction: like Django's test client, keep them
    from closing its connection when they finish."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(db):
    return token_pair_for(make_user("fuzzer"))["token"]


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation(case, token):
    headers = {"Authorization": f"Bearer {token}"}
    response = fuzzing.cpu_bounded(f"{case.method} {case.formatted_path}", case.call, headers=headers)
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance, ignored_auth],
        headers=headers,
    )


def test_the_cpu_bound_fails_a_costly_request(monkeypatch):
    monkeypatch.setattr(fuzzing, "MAX_CPU_SECONDS", 0.05)

    def busy():
        started = time.process_time()
        while time.process_time() - started < 0.1:
            pass

    with pytest.raises(AssertionError, match="s of CPU"):
        fuzzing.cpu_bounded("busy", busy)
