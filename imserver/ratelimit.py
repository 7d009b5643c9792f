"""Fixed-window counters in the shared cache (Redis in production), so that every server
process agrees on them (contract 1.2)."""

import hashlib
import ipaddress
import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis import RedisError
from rest_framework import throttling

from imserver import metrics

logger = logging.getLogger(__name__)
CACHE_ERRORS = (RedisError, ConnectionError, TimeoutError, OSError)

WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate):
    """'30/minute' -> (30, 60)."""
    count, _, period = rate.partition("/")
    return int(count), WINDOWS[period.rstrip("s")]


def _cache_key(key, window, bucket):
    # Keys hold client-chosen text (usernames, emails): hashed, they are safe for any cache.
    return f"rl:{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}:{window}:{bucket}"


def hit(key, limit, window):
    """Counts one hit against key; returns 0 while within limit, else seconds until it resets.

    Fails open: with the shared cache unreachable, requests are served and a warning logged.
    """
    now = time.time()
    bucket = int(now // window)
    name = _cache_key(key, window, bucket)
    try:
        cache.add(name, 0, timeout=window + 1)
        try:
            count = cache.incr(name)
        except ValueError:  # expired between add and incr
            cache.add(name, 1, timeout=window + 1)
            count = 1
    except CACHE_ERRORS:
        metrics.CACHE_FAILURES.inc()
        logger.warning("rate limits: the shared cache is unreachable; not limiting %s", key)
        return 0
    if count <= limit:
        return 0
    return max(1, int((bucket + 1) * window - now + 0.999))


def release(key, window):
    """Takes back one hit() of key in the current window (a reserved failure that did not happen)."""
    try:
        cache.decr(_cache_key(key, window, int(time.time() // window)))
    except ValueError:  # the window turned since: nothing left to take back
        pass
    except CACHE_ERRORS:
        metrics.CACHE_FAILURES.inc()


def peek(key, limit, window):
    """Like hit() without counting: seconds until key is usable again, 0 if it is now."""
    now = time.time()
    bucket = int(now // window)
    try:
        count = cache.get(_cache_key(key, window, bucket)) or 0
    except CACHE_ERRORS:
        metrics.CACHE_FAILURES.inc()
        logger.warning("rate limits: the shared cache is unreachable; not limiting %s", key)
        return 0
    if count < limit:
        return 0
    return max(1, int((bucket + 1) * window - now + 0.999))


def _is_trusted(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in settings.TRUSTED_PROXIES:
        try:
            if ip in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(meta):
    """The client's address: REMOTE_ADDR, or the nearest untrusted hop of X-Forwarded-For when the
    request came through a configured trusted proxy (never believed from anyone else)."""
    remote = meta.get("REMOTE_ADDR") or "unknown"
    if not settings.TRUSTED_PROXIES or not _is_trusted(remote):
        return remote
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return hop
    return hops[0] if hops else remote


class ScopedRateThrottle(throttling.BaseThrottle):
    """Per-user (authenticated) or per-address (anonymous) limit for the view's `throttle_scope`."""

    def allow_request(self, request, view):
        self.wait_seconds = 0
        scope = getattr(view, "throttle_scope", None)
        if not settings.RATE_LIMITS_ENABLED or not scope:
            return True
        limit, window = parse_rate(settings.RATE_LIMITS[scope])
        user = getattr(request, "user", None)
        who = (
            f"user:{user.pk}" if user is not None and user.is_authenticated else f"addr:{client_address(request.META)}"
        )
        self.wait_seconds = hit(f"{scope}:{who}", limit, window)
        return self.wait_seconds == 0

    def wait(self):
        return self.wait_seconds


def check_rate(scope, who):
    """Counts a hit for an ad-hoc key (e.g. a username); returns the wait in seconds, 0 if allowed."""
    if not settings.RATE_LIMITS_ENABLED:
        return 0
    limit, window = parse_rate(settings.RATE_LIMITS[scope])
    return hit(f"{scope}:{who}", limit, window)
