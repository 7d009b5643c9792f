"""Logging helpers: token redaction, the request id of each line, opt-in JSON lines."""

import contextvars
import logging
import re
import secrets
import sys
from datetime import UTC, datetime

import orjson
import sentry_sdk
from django.core.signals import request_finished

# Credentials that travel in URLs: /ws?token=<access token>, and the signature that opens a
# signed media URL (media.storage.media_url).
TOKEN_IN_URL = re.compile(r"((?:token|sig)=)[^&\s\"']+")


def redact(text):
    return TOKEN_IN_URL.sub(r"\1[redacted]", text)


# A load balancer's id is kept when it looks like one (printable, no spaces), else we make our own.
REQUEST_ID_FORMAT = re.compile(r"[\x21-\x7e]{1,200}")

request_id = contextvars.ContextVar("request_id", default=None)


class RedactTokens(logging.Filter):
    """Keeps access tokens out of the logs: servers log WebSocket URLs, and /ws takes ?token=."""

    def filter(self, record):
        message = record.getMessage()
        if "token=" in message or "sig=" in message:
            record.msg, record.args = redact(message), None
        return True


def redact_daphne_access_log():
    """daphne writes its access log straight to a stream, not through logging: its entries get the
    same redaction. Nothing to do when another server runs the application."""
    access = sys.modules.get("daphne.access")
    if access is None or getattr(access.AccessLogGenerator, "redacts", False):
        return
    write_entry = access.AccessLogGenerator.write_entry

    def redacted_write_entry(self, host, date, request, *args, **kwargs):
        write_entry(self, host, date, redact(request), *args, **kwargs)

    access.AccessLogGenerator.write_entry = redacted_write_entry
    access.AccessLogGenerator.redacts = True


class AddRequestId(logging.Filter):
    """Puts the id of the request being served (or None) on every record."""

    def filter(self, record):
        record.request_id = request_id.get()
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json), for log shippers."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class RequestIdMiddleware:
    """Honours the load balancer's X-Request-ID (else makes one), tags the request's log lines
    and Sentry events with it, and echoes it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        rid = incoming if REQUEST_ID_FORMAT.fullmatch(incoming) else secrets.token_hex(16)
        # Not reset on the way out: Django logs the response ("Not Found: ...") after the
        # middleware returns; request_finished clears it.
        request_id.set(rid)
        request.request_id = rid
        sentry_sdk.set_tag("request_id", rid)  # a no-op unless SENTRY_DSN is set
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response


def redact_sentry_event(event, hint):
    """Sentry's scrubber knows header and field names, not the token in a WebSocket URL."""
    request = event.get("request") or {}
    for name in ("url", "query_string"):
        if isinstance(request.get(name), str):
            request[name] = TOKEN_IN_URL.sub(r"\1[redacted]", request[name])
    return event


def _forget_request_id(**kwargs):
    request_id.set(None)


request_finished.connect(_forget_request_id, dispatch_uid="imserver.logs.forget_request_id")
