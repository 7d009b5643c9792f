"""Logging helpers."""

import logging
import re

TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Keeps access tokens out of the logs: servers log WebSocket URLs, and /ws takes ?token=."""

    def filter(self, record):
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = TOKEN_IN_URL.sub(r"\1[redacted]", message), None
        return True
