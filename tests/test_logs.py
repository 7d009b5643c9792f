"""Request ids, JSON log lines and Sentry reporting (issue 17)."""

import gzip
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from imserver.logs import AddRequestId, JsonLines, RedactTokens

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def json_lines():
    """The handler LOG_FORMAT=json configures, on the root logger, writing into a list."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(orjson.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(JsonLines())
    handler.addFilter(RedactTokens())
    handler.addFilter(AddRequestId())
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


@pytest.mark.django_db
class TestRequestId:
    def test_the_load_balancers_id_is_echoed_and_on_every_line(self, api, json_lines):
        response = api.get("/v1/no-such-route", HTTP_X_REQUEST_ID="lb-7f3a9c")
        assert response["X-Request-ID"] == "lb-7f3a9c"
        not_found = [line for line in json_lines if "/v1/no-such-route" in line["message"]]
        assert not_found and all(line["request_id"] == "lb-7f3a9c" for line in not_found)
        assert set(not_found[0]) == {"time", "level", "logger", "message", "request_id"}

    def test_one_is_made_when_none_or_a_bad_one_comes(self, api):
        made = api.get("/healthz")["X-Request-ID"]
        assert len(made) == 32 and made != api.get("/healthz")["X-Request-ID"]
        assert len(api.get("/healthz", HTTP_X_REQUEST_ID="has spaces\n")["X-Request-ID"]) == 32

    def test_lines_outside_a_request_have_none(self, api, json_lines):
        api.get("/healthz", HTTP_X_REQUEST_ID="done-1")
        logging.getLogger("imserver.test").warning("between requests")
        assert json_lines[-1]["request_id"] is None


def run_python(code, **env):
    environment = {**os.environ, "IMSERVER_VAR_DIR": env.pop("var_dir"), **env}
    for name in ("DATABASE_URL", "REDIS_URL"):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_log_format_json_writes_json_lines_with_tokens_redacted(tmp_path):
    result = run_python(
        "import django, logging; django.setup();"
        "logging.getLogger('uvicorn.error').info('GET /ws?token=eyJ.secret.sig&since=3')",
        LOG_FORMAT="json",
        var_dir=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "GET /ws?token=[redacted]&since=3"
    assert line["level"] == "INFO" and line["logger"] == "uvicorn.error"


class FakeSentry(http.server.BaseHTTPRequestHandler):
    """Speaks Sentry's envelope endpoint: POST /api/<project>/envelope/, gzip or plain."""

    received: list

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, [json.loads(line) for line in body.splitlines() if line.strip()]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def sentry():
    FakeSentry.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeSentry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_sentry_gets_errors_with_the_request_id_and_no_personal_data(sentry, tmp_path):
    dsn = f"http://publickey@127.0.0.1:{sentry.server_address[1]}/42"
    code = """
import django, sentry_sdk
django.setup()
from accounts import views
def user_register(**data):
    raise RuntimeError("register exploded")
views.services.user_register = user_register
from django.test import Client
body = {"username": "alice", "password": "hunter2-secret", "email": "a@example.com", "nickname": "A"}
response = Client().post("/v1/auth/register", body,
    content_type="application/json", HTTP_X_REQUEST_ID="rid-sentry-1", HTTP_AUTHORIZATION="Bearer eyJ.secret.sig",
    REMOTE_ADDR="203.0.113.9", HTTP_HOST="localhost")
assert response.status_code == 500, response.status_code
sentry_sdk.flush()
"""
    result = run_python(code, SENTRY_DSN=dsn, RATE_LIMITS="off", var_dir=str(tmp_path))
    assert result.returncode == 0, result.stderr
    events = [item for path, items in FakeSentry.received if path == "/api/42/envelope/" for item in items[2::2]]
    exploded = [event for event in events if "register exploded" in json.dumps(event)]
    assert exploded
    event = exploded[0]
    assert event["tags"]["request_id"] == "rid-sentry-1"
    sent = json.dumps(event)
    assert "hunter2-secret" not in sent and "eyJ.secret.sig" not in sent and "203.0.113.9" not in sent
