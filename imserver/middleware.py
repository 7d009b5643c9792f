"""Middleware that keeps every answer outside the moderators' admin in the contract's JSON envelope."""

import logging

from django.core.exceptions import DisallowedHost, RequestDataTooBig

from imserver.api import error_response
from imserver.urlbase import base_url_for_request, request_base_url

logger = logging.getLogger(__name__)

# Contract 1.1: errors from every layer are the envelope (/v1, /ws, /media, /healthz, unknown
# paths); the admin and its static files are pages for people, with Django's own error pages.
HTML_PREFIXES = ("/admin/", "/static/")


def is_api_path(path):
    return not path.startswith(HTML_PREFIXES)


def disallowed_host_response(request):
    """The first request of a new setup often names a host the server does not know (the Android
    emulator reaches the host machine as 10.0.2.2, a phone on the LAN by its address): say so."""
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    logger.warning("refused a request for host %r: not in ALLOWED_HOSTS", host[:100])
    return error_response(
        400,
        f"The host name {host[:100]!r} is not in this server's ALLOWED_HOSTS. Add it to the ALLOWED_HOSTS "
        "environment variable (comma-separated; e.g. ALLOWED_HOSTS=localhost,127.0.0.1,10.0.2.2 for the Android "
        "emulator, or the machine's LAN address for a phone) and restart the server.",
    )


class ApiErrorMiddleware:
    """Turns Django's own error pages (404, 405, 413, 500, CSRF) outside the admin into the envelope.

    It also records the request's base URL for absolute links built deeper down.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            return disallowed_host_response(request)
        token = request_base_url.set(base_url_for_request(request))
        try:
            response = self.get_response(request)
        finally:
            request_base_url.reset(token)
        if (
            is_api_path(request.path)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            code = response.status_code
            headers = {name: response[name] for name in ("Retry-After", "Allow") if response.has_header(name)}
            return error_response(code, response.reason_phrase or "Error", headers)
        return response

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, "Request body is too large")
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "The server failed to complete the request")
