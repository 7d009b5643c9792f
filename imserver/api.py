"""Shared REST plumbing: the error envelope (contract 1.1), JSON encoding, ids and pagination."""

import logging
import threading
import unicodedata
from collections.abc import Mapping
from contextlib import contextmanager

import orjson
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, parsers, renderers, serializers, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

STATUS_MESSAGES = {
    400: "Invalid request parameters",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def dumps(data) -> bytes:
    """The one JSON encoder of REST responses and realtime events (ISO 8601 UTC with Z)."""
    return orjson.dumps(data, option=ORJSON_OPTIONS)


class JSONRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b"" if data is None else dumps(data)


# --- Errors -------------------------------------------------------------------------------------


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict"


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "Gone"


# Room for the multipart framing and the small form fields around an uploaded file.
MULTIPART_OVERHEAD = 64 * 1024


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Payload too large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service temporarily unavailable, try again shortly"


def envelope(code, details, fields=None, message=None):
    body = {"code": code, "message": message or STATUS_MESSAGES.get(code, "Error"), "details": details}
    if fields:
        body["fields"] = fields
    return body


def error_response(code, details, headers=None):
    """A JSON error envelope outside DRF (middleware, plain Django views)."""
    response = JsonResponse(envelope(code, details), status=code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_validation(detail):
    """DRF's nested validation detail -> ({field: [messages]}, human-readable summary)."""
    fields = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, sub in enumerate(value):
                walk(f"{prefix}[{index}]", sub)
        else:
            messages = value if isinstance(value, list) else [value]
            fields.setdefault(prefix or "non_field_errors", []).extend(str(m) for m in messages)

    walk("", detail)
    parts = []
    for field, messages in fields.items():
        text = " ".join(messages)
        parts.append(text if field == "non_field_errors" else f"{field}: {text}")
    return fields, "; ".join(parts)


def exception_handler(exc, context):
    """DRF exception handler: every error leaves as the contract's envelope."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("Request body is too large")
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        exc = ServiceUnavailable()
    elif isinstance(exc, DatabaseError):
        logger.exception("database error")
        return Response(envelope(500, "The server failed to complete the request"), status=500)

    if not isinstance(exc, exceptions.APIException):
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(envelope(500, "The server failed to complete the request"), status=500)

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    code = exc.status_code
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        # DRF answers 403 when the view has no authenticator (login, refresh); it is still a 401.
        code = 401
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    if isinstance(exc, exceptions.ValidationError):
        fields, summary = _flatten_validation(exc.detail)
        return Response(envelope(code, summary, fields), status=code, headers=headers)
    detail = exc.detail
    if isinstance(detail, dict):
        detail = detail.get("detail", next(iter(detail.values()), ""))
    if isinstance(detail, list):
        detail = " ".join(str(d) for d in detail)
    return Response(envelope(code, str(detail)), status=code, headers=headers)


@contextmanager
def stranger_gets_404_first(authorize):
    """Around a block that reads and judges a request's input: when the input is refused,
    authorize() (which raises 404 for "missing or not yours") runs first, so a stranger to the
    object learns nothing from how its input would have been judged. Valid requests skip it."""
    try:
        yield
    except (exceptions.APIException, RequestDataTooBig) as exc:
        if not isinstance(exc, exceptions.NotFound):
            authorize()
        raise


# --- Ids: opaque strings with a kind prefix (contract 1) ----------------------------------------

MAX_ID_DIGITS = 18  # stays below 2**63 - 1, so an absurd id is a 404, never a database error


def format_id(prefix, pk):
    return None if pk is None else f"{prefix}{pk}"


def parse_id(prefix, value):
    """'c42' -> 42 for prefix 'c'; None for anything else (the caller turns it into 404/400)."""
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    digits = value[len(prefix) :]
    if not digits.isascii() or not digits.isdigit() or len(digits) > MAX_ID_DIGITS:
        return None
    return int(digits)


# --- Pagination ---------------------------------------------------------------------------------

MAX_PAGE_SIZE = 100


def _non_negative_int(params, name, default):
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise exceptions.ValidationError({name: ["Must be a non-negative integer."]}) from None
    if value < 0:
        raise exceptions.ValidationError({name: ["Must be a non-negative integer."]})
    if value >= 10**MAX_ID_DIGITS:  # beyond what the database's 64-bit OFFSET can hold with a limit added
        raise exceptions.ValidationError({name: [f"Must be less than 10^{MAX_ID_DIGITS}."]})
    return value


def page_params(request, default_limit):
    """limit/offset from the query string: defaults per endpoint, limit clamped to 100."""
    limit = min(_non_negative_int(request.query_params, "limit", default_limit), MAX_PAGE_SIZE)
    offset = _non_negative_int(request.query_params, "offset", 0)
    return limit, offset


def limit_param(request, default_limit):
    return min(_non_negative_int(request.query_params, "limit", default_limit), MAX_PAGE_SIZE)


_serializers = threading.local()


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know (never silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - {name for name, field in self.fields.items() if not field.read_only})
            if unknown:
                raise exceptions.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
        return super().to_internal_value(data)


def validated(serializer_class, data):
    """Validates request data with an input serializer; returns the cleaned dict (or 400).

    One instance per class and thread is kept and reused: DRF deep-copies a serializer's fields
    every time one is made, which was a tenth of a send's CPU.
    """
    instances = _serializers.__dict__.setdefault("by_class", {})
    serializer = instances.get(serializer_class)
    if serializer is None:
        serializer = instances[serializer_class] = serializer_class()
    return serializer.run_validation(data)


# Control, formatting and private or unassigned characters: a right-to-left override or a
# zero-width space lets a name pass for another. The zero-width joiner stays (emoji sequences).
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cn", "Zl", "Zp"}
ZERO_WIDTH_JOINER = "\u200d"


def visible_text(value):
    """A validator for names people see: none of INVISIBLE_CATEGORIES."""
    if any(unicodedata.category(char) in INVISIBLE_CATEGORIES and char != ZERO_WIDTH_JOINER for char in value):
        raise exceptions.ValidationError("Must not contain control, formatting or invisible characters.")


class StrictCharField(serializers.CharField):
    """A string field that takes only JSON strings (DRF would turn 12 or true into text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- Request bodies -------------------------------------------------------------------------------

MAX_JSON_DEPTH = 100  # contract 23: deeper is a 400


def _too_deep(value, limit):
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser refusing documents nested deeper than MAX_JSON_DEPTH (400, never the 500
    of a RecursionError)."""

    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = exceptions.ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if _too_deep(data, MAX_JSON_DEPTH):
            raise too_deep
        return data
