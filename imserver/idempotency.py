"""Idempotent retries (contract 21): `Idempotency-Key` on every mutating /v1 request.

The first request with a key claims it (a row committed at once, so a concurrent repeat sees it
and gets 409), then runs inside one transaction that also stores its answer: the effects and the
stored answer commit together, and a crash in between leaves neither (the claim then lapses after
IDEMPOTENCY_LOCK_SECONDS and the next repeat runs the request itself). Repeats within
IDEMPOTENCY_KEY_TTL get the stored status and body with `Idempotent-Replayed: true`; the same key
with another method, path or body is 422.

Keys are per caller: the user of a valid access token, else "anonymous" plus the client address
(register, login: the body, with its credentials, must match as well for a replay). A request
whose token is refused runs without the key and gets its 401 from the view.

Which answers are stored (as Stripe does): every answer of a request that ran, success or error
(400, 403, 404, 409 of the route itself, ...), except 5xx (the server failed; the effects are
rolled back and a retry runs again), 401 and 429 (refused before running, as is 413 for a body
the server did not read), and our own 409 "still running".
"""

import hashlib
import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from imserver.api import error_response
from imserver.models import IdempotencyKey
from imserver.ratelimit import client_address

logger = logging.getLogger(__name__)

MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
KEY_FORMAT = re.compile(r"[\x20-\x7e]{1,255}")  # 1-255 printable ASCII characters
NOT_STORED_STATUSES = {401, 429}
REPLAYED_HEADERS = ("Content-Type", "Location")
CHUNK = 64 * 1024


class HashingStream:
    """Wraps the request body stream and hashes what the view reads, without holding it."""

    def __init__(self, stream, length: int):
        self.stream = stream
        self.remaining = length
        self.digest = hashlib.sha256()
        self.at_end = length == 0

    def _seen(self, data: bytes, size) -> bytes:
        self.digest.update(data)
        self.remaining -= len(data)
        if not data or self.remaining <= 0 or (size is not None and size >= 0 and len(data) < size):
            self.at_end = True
        return data

    def read(self, size=None):
        return self._seen(self.stream.read() if size is None else self.stream.read(size), size)

    def readline(self, size=None):
        data = self.stream.readline() if size is None else self.stream.readline(size)
        self.digest.update(data)
        self.remaining -= len(data)
        if not data:
            self.at_end = True
        return data

    def close(self) -> None:
        self.stream.close()

    def drain(self) -> None:
        while not self.at_end:
            self.read(CHUNK)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _request_length(request) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _hashing_stream(request) -> HashingStream:
    # Django reads the body (request.body, request.POST, uploads) through request._stream.
    stream = HashingStream(request._stream, _request_length(request))
    request._stream = stream
    return stream


def _fingerprint(method: str, path: str, body_digest: str) -> str:
    return hashlib.sha256(f"{method} {path} {body_digest}".encode()).hexdigest()


def _scope(request) -> str | None:
    """The caller the key belongs to; None when the request carries a token that is refused."""
    if "HTTP_AUTHORIZATION" not in request.META:
        return f"anonymous:{client_address(request.META)}"
    drf_request = Request(request)
    for authenticator_class in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        try:
            result = authenticator_class().authenticate(drf_request)
        except exceptions.APIException:
            return None
        if result is not None:
            return f"user:{result[0].pk}"
    return None


def _replay(record: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(bytes(record.body), status=record.status)
    for name, value in record.headers.items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


def _mismatch() -> HttpResponse:
    return error_response(422, "This Idempotency-Key was used for a different request")


def _in_progress() -> HttpResponse:
    return error_response(409, "A request with this Idempotency-Key is still being processed")


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if key is None or request.method not in MUTATING_METHODS or not request.path.startswith("/v1/"):
            return self.get_response(request)
        if not KEY_FORMAT.fullmatch(key):
            return error_response(400, "Idempotency-Key must be 1-255 printable ASCII characters")
        scope = _scope(request)
        if scope is None:
            return self.get_response(request)
        path = request.get_full_path()
        for _attempt in range(3):  # a claim may vanish between our insert and our read: look again
            claim = uuid.uuid4()
            record = self._claim(scope, key, request.method, path, claim)
            if record is None:
                continue
            if record.claim == claim:
                return self._run(request, record)
            if (record.method, record.path) != (request.method, path):
                return _mismatch()
            if record.locked_until is not None:
                return _in_progress()
            stream = _hashing_stream(request)
            stream.drain()
            if record.fingerprint != _fingerprint(request.method, path, stream.hexdigest()):
                return _mismatch()
            return _replay(record)
        return _in_progress()

    @staticmethod
    def _claim(scope: str, key: str, method: str, path: str, claim: uuid.UUID) -> IdempotencyKey | None:
        """Ours (record.claim == claim), someone else's, or None when it just went away."""
        now = timezone.now()
        locked_until = now + timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS)
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    scope=scope, key=key, method=method, path=path, claim=claim, locked_until=locked_until
                )
        except IntegrityError:
            pass
        record = IdempotencyKey.objects.filter(scope=scope, key=key).first()
        if record is None:
            return None
        if record.created_at < now - settings.IDEMPOTENCY_KEY_TTL:
            # Expired but not pruned yet: the key is free again.
            IdempotencyKey.objects.filter(pk=record.pk, created_at=record.created_at).delete()
            return None
        if record.locked_until is not None and record.locked_until < now:
            # Its holder died before finishing (nothing of it committed): the repeat takes over.
            taken = IdempotencyKey.objects.filter(pk=record.pk, claim=record.claim).update(
                claim=claim, locked_until=locked_until
            )
            if taken:
                record.claim, record.locked_until = claim, locked_until
        return record

    def _run(self, request, record: IdempotencyKey):
        stream = _hashing_stream(request)
        stored = False
        try:
            with transaction.atomic():
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
                elif self._storable(response, stream):
                    stored = self._store(record, response, stream)
                    if not stored:
                        # Our claim lapsed and a repeat took over: let it be the one that counts.
                        transaction.set_rollback(True)
                        response = _in_progress()
        finally:
            if not stored:
                self._release(record)
        return response

    @staticmethod
    def _storable(response, stream: HashingStream) -> bool:
        if response.streaming or response.status_code in NOT_STORED_STATUSES:
            return False
        if response.status_code < 400:
            stream.drain()  # a route that ignores the body still answers only for this body
        return stream.at_end

    @staticmethod
    def _store(record: IdempotencyKey, response, stream: HashingStream) -> bool:
        return bool(
            IdempotencyKey.objects.filter(pk=record.pk, claim=record.claim).update(
                locked_until=None,
                fingerprint=_fingerprint(record.method, record.path, stream.hexdigest()),
                status=response.status_code,
                headers={name: response[name] for name in REPLAYED_HEADERS if response.has_header(name)},
                body=response.content,
            )
        )

    @staticmethod
    def _release(record: IdempotencyKey) -> None:
        try:
            IdempotencyKey.objects.filter(pk=record.pk, claim=record.claim).delete()
        except Exception:
            # The database failed the request too; the claim lapses after IDEMPOTENCY_LOCK_SECONDS.
            logger.warning("idempotency: could not release the claim on key %s", record.pk, exc_info=True)


def idempotency_keys_prune(*, older_than: timedelta | None = None) -> int:
    """Deletes keys past their lifetime (IDEMPOTENCY_KEY_TTL); returns how many."""
    cutoff = timezone.now() - (older_than or settings.IDEMPOTENCY_KEY_TTL)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
