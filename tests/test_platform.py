"""The plumbing every endpoint shares: the error envelope, health, schema, settings."""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from django.db import connection
from django.test import Client

from tests.accounts.test_auth import assert_error

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


class TestEnvelope:
    @pytest.mark.parametrize("path", ["/v1/no/such/thing", "/no/such/thing", "/ws", "/"])
    def test_unknown_route_is_json_404(self, api, path):
        response = api.get(path)
        assert_error(response, 404)
        assert response["Content-Type"].startswith("application/json")

    def test_the_admin_keeps_its_pages(self, admin_client):
        response = admin_client.get("/admin/no/such/page/")
        assert response.status_code == 404 and response["Content-Type"].startswith("text/html")

    def test_method_not_allowed(self, user_api):
        assert_error(user_api.delete("/v1/users/search"), 405)

    def test_unhandled_error_is_500_envelope_without_trace(self, user_api, monkeypatch, settings):
        settings.DEBUG = True  # even with DEBUG on, the API never shows a trace

        def boom(**kwargs):
            raise RuntimeError("secret internals")

        monkeypatch.setattr("contacts.selectors.users_search", boom)
        client = Client(raise_request_exception=False)
        client.defaults["HTTP_AUTHORIZATION"] = user_api._credentials["HTTP_AUTHORIZATION"]
        response = client.get("/v1/users/search", {"query": "a"})
        body = assert_error(response, 500)
        assert "secret internals" not in response.content.decode()
        assert body["message"] == "Internal server error"

    def test_database_outage_is_503(self, user_api, monkeypatch):
        from django.db import OperationalError

        def down(**kwargs):
            raise OperationalError("connection refused")

        monkeypatch.setattr("contacts.selectors.users_search", down)
        assert_error(user_api.get("/v1/users/search", {"query": "a"}), 503)

    def test_unsupported_content_type_is_415(self, api):
        response = api.post("/v1/auth/login", "username=a", content_type="application/x-www-form-urlencoded")
        assert_error(response, 415)


class TestHealth:
    def test_healthy(self, db):
        response = Client().get("/healthz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "realtime": "ok"}

    def test_get_and_head_only(self, db):
        response = Client(enforce_csrf_checks=True).post("/healthz")
        assert response.status_code == 405 and response.json()["code"] == 405
        assert Client().head("/healthz").status_code == 200

    def test_database_down_is_503(self, db, monkeypatch):
        def broken_cursor(*args, **kwargs):
            raise RuntimeError("down")

        with monkeypatch.context() as patched:  # down for the request only: the test's teardown reads
            patched.setattr(connection, "cursor", broken_cursor)
            response = Client().get("/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"] == "unavailable"

    def test_bus_down_is_503(self, db, monkeypatch):
        def broken():
            raise ConnectionError("redis down")

        monkeypatch.setattr("imserver.views.bus_ping", broken)
        response = Client().get("/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["realtime"] == "unavailable"


class TestSchema:
    def test_schema_is_served(self, db):
        response = Client().get("/v1/schema/", HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        schema = response.json()
        assert schema["openapi"].startswith("3.")
        assert "/v1/auth/register" in schema["paths"]
        assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        register = schema["paths"]["/v1/auth/register"]["post"]
        assert "201" in register["responses"] and "default" in register["responses"]

    def test_every_operation_has_a_summary_and_mutations_take_an_idempotency_key(self, db):
        schema = Client().get("/v1/schema/", HTTP_ACCEPT="application/json").json()
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                assert operation.get("summary"), f"{method.upper()} {path}: add it to imserver.schema.SUMMARIES"
                headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
                assert ("Idempotency-Key" in headers) == (method in {"post", "put", "patch", "delete"}), path

    def test_delete_account_documents_its_body(self, db):
        schema = Client().get("/v1/schema/", HTTP_ACCEPT="application/json").json()
        body = schema["paths"]["/v1/user/me"]["delete"]["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert "password" in schema["components"]["schemas"][ref]["properties"]
        assert not body.get("required")  # OAuth-only accounts send none

    def test_response_fields_are_marked_required(self, db):
        # Generated clients make an unrequired field optional (String?): only fields that really
        # may be absent are left out.
        may_be_absent = {"IceServerOut": {"username", "credential"}, "SentMessageOut": {"temp_id"}}
        schema = Client().get("/v1/schema/", HTTP_ACCEPT="application/json").json()
        for name, component in schema["components"]["schemas"].items():
            if name.endswith("Out") and "properties" in component:
                unrequired = set(component["properties"]) - set(component.get("required", []))
                assert unrequired == may_be_absent.get(name, set()), name

    def test_openapi_3_0_rendering_for_dart_generators(self, db):
        default = Client().get("/v1/schema/", HTTP_ACCEPT="application/json").json()
        legacy = Client().get("/v1/schema/?version=3.0", HTTP_ACCEPT="application/json").json()
        assert default["openapi"] == "3.1.0"
        assert legacy["openapi"] == "3.0.3"
        assert legacy["info"]["version"] == default["info"]["version"] == "1.0.0"
        assert legacy["paths"].keys() == default["paths"].keys()
        text = orjson.dumps(legacy).decode()
        assert '"nullable":true' in text and '"type":"null"' not in text

    def test_docs_page_is_served_without_network(self, db):
        response = Client().get("/v1/docs/")
        assert response.status_code == 200
        assert b"swagger" in response.content.lower()
        assert b"cdn.jsdelivr" not in response.content


def _django_check(env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "IMSERVER_ENV", "DEBUG", "EMAIL_HOST"}
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION_ENV = {
    "IMSERVER_ENV": "production",
    "SECRET_KEY": "x8Jq2v" * 11,
    "ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imserver"),
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "EMAIL_HOST": "smtp.example.com",
}


class TestProductionSettings:
    def test_refuses_to_start_without_secret_key(self):
        result = _django_check({"IMSERVER_ENV": "production", "ALLOWED_HOSTS": "chat.example.com"})
        assert result.returncode != 0
        assert "SECRET_KEY is required" in result.stderr

    def test_refuses_wildcard_hosts(self):
        result = _django_check({"IMSERVER_ENV": "production", "SECRET_KEY": "k" * 64, "ALLOWED_HOSTS": "*"})
        assert result.returncode != 0
        assert "ALLOWED_HOSTS" in result.stderr

    def test_refuses_debug(self):
        result = _django_check({**PRODUCTION_ENV, "DEBUG": "true"})
        assert result.returncode != 0
        assert "DEBUG must be off" in result.stderr

    def test_refuses_to_start_without_smtp(self):
        result = _django_check({**PRODUCTION_ENV, "EMAIL_HOST": ""})
        assert result.returncode != 0
        assert "EMAIL_HOST is required" in result.stderr

    def test_documented_production_environment_passes_deploy_checks(self):
        result = _django_check(PRODUCTION_ENV)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("query, accept", [("", "text/html"), ("?format=api", "*/*"), ("", "text/html,*/*;q=0.8")])
def test_no_browsable_api_only_json(user_api, query, accept):
    response = user_api.get(f"/v1/user/me{query}", HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith("application/json")
    assert b"<html" not in response.content.lower()


def test_access_tokens_never_reach_the_logs(caplog):
    import logging

    from imserver.logs import RedactTokens

    logger = logging.getLogger("uvicorn.error")
    logger.addFilter(RedactTokens())
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5555", "/ws?token=eyJhbGc.secret.sig&since=4")
    finally:
        logger.filters.clear()
    assert "secret" not in caplog.text
    assert "/ws?token=[redacted]&since=4" in caplog.text


def test_daphnes_access_log_redacts_tokens_and_media_signatures(tmp_path):
    import httpx

    from tests.servers import Server

    server = Server(tmp_path, PYTHONUNBUFFERED="1")
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(f"{server.base}/media/f/media1?exp=1&sig=SIGNATURE-SECRET").status_code == 403
            client.get(f"{server.base}/ws?token=TOKEN-SECRET&since=4")  # a socket URL fetched as HTTP
    finally:
        server.stop()
    log = server.log.read_text()
    assert "SECRET" not in log
    assert '"GET /media/f/media1?exp=1&sig=[redacted]" 403' in log and '"GET /ws?token=[redacted]&since=4"' in log


@pytest.mark.django_db
def test_an_unknown_host_is_told_how_to_allow_it(api):
    # The Android emulator reaches the developer's machine as 10.0.2.2.
    response = api.get("/v1/user/me", HTTP_HOST="10.0.2.2:8000")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400
    assert "'10.0.2.2:8000' is not in this server's ALLOWED_HOSTS" in body["details"]
    assert "ALLOWED_HOSTS=localhost,127.0.0.1,10.0.2.2" in body["details"]


@pytest.mark.django_db
def test_an_allowed_emulator_host_is_served(api, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "10.0.2.2"]
    assert api.get("/healthz", HTTP_HOST="10.0.2.2:8000").status_code == 200


def _pins(path):
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, version = line.split(" ")[0].partition("==")
            pins[name.split("[")[0].lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize(
    ("source", "lock"), [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")]
)
def test_the_lock_files_hold_every_pin(source, lock):
    """`make lock` regenerates them; a pin changed without it fails here."""
    locked = _pins(lock)
    lines = (ROOT / lock).read_text().splitlines()
    for index, line in enumerate(lines):
        if "==" in line and not line.startswith((" ", "#")):
            assert lines[index + 1].strip().startswith("--hash=sha256:"), line
    for name, version in _pins(source).items():
        assert locked.get(name) == version, f"{name}=={version} is not in {lock}: run make lock"
