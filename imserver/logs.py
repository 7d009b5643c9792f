"""Logging helpers."""

import logging
import re
import sys

# Credentials that travel in URLs: /ws?token=<access token>, and the signature that opens a
# signed media URL (media.storage.media_url).
TOKEN_IN_URL = re.compile(r"((?:token|sig)=)[^&\s\"']+")


def redact(text):
    return TOKEN_IN_URL.sub(r"\1[redacted]", text)


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
