"""Sliding-window rate limits counted in the shared cache (Redis in production), so that every
server process agrees on them (contract 1.2).

Each key counts its hits per fixed window of the rate's period, and a hit is allowed while the
previous window's count, weighted by the share of it still inside the sliding window, plus the
current window's count stays under the limit (the sliding-window counter). A fixed window alone
lets twice the rate through across a window's edge; this lets about the rate through in any
period-long span, with two counters a key. Refused hits are not counted, so the Retry-After
they answer is the exact time until a hit would pass again. On Redis the check and the count are
one Lua script (atomic across processes); on a local cache they run under a process lock.
"""

import hashlib
import ipaddress
import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis import RedisError
from rest_framework import throttling

from imserver import metrics

logger = logging.getLogger(__name__)
CACHE_ERRORS = (RedisError, ConnectionError, TimeoutError, OSError)

WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

clock = time.time  # the limiter's clock (tests move it)

# KEYS: the current and the previous window's counters. ARGV: limit, the previous window's weight,
# the counters' lifetime. Returns {allowed, current count, previous count}.
_HIT_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or 0)
local previous = tonumber(redis.call('GET', KEYS[2]) or 0)
if previous * tonumber(ARGV[2]) + current >= tonumber(ARGV[1]) then
    return {0, current, previous}
end
current = redis.call('INCR', KEYS[1])
if current == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {1, current, previous}
"""
# Takes one hit back from the current window, else from the previous one (the window turned
# between the hit and its release).
_RELEASE_SCRIPT = """
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or 0) > 0 then
        return redis.call('DECR', key)
    end
end
return 0
"""
_scripts = {}
_local_lock = threading.Lock()


def parse_rate(rate):
    """'30/minute' -> (30, 60)."""
    count, _, period = rate.partition("/")
    return int(count), WINDOWS[period.rstrip("s")]


def _cache_key(key, window, bucket):
    # Keys hold client-chosen text (usernames, emails): hashed, they are safe for any cache.
    return f"rl:{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}:{window}:{bucket}"


def _windows(key, window, now):
    """The current and the previous window's counter names, and the previous one's weight."""
    bucket, into = divmod(now, window)
    bucket = int(bucket)
    return _cache_key(key, window, bucket), _cache_key(key, window, bucket - 1), into, 1 - into / window


def _redis():
    """The Redis client of the default cache, or None when the cache is a local one."""
    backend = caches["default"]
    return backend._cache.get_client(write=True) if isinstance(backend, RedisCache) else None


def _run(client, source, names, args=()):
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    return script(keys=[cache.make_and_validate_key(name) for name in names], args=list(args), client=client)


def _count(current_name, previous_name, limit, weight, window):
    """Checks and counts one hit, atomically: (allowed, current count, previous count)."""
    if client := _redis():
        allowed, current, previous = _run(
            client, _HIT_SCRIPT, [current_name, previous_name], [limit, repr(weight), 2 * window + 1]
        )
        return bool(allowed), int(current), int(previous)
    with _local_lock:
        counts = cache.get_many([current_name, previous_name])
        current, previous = counts.get(current_name, 0), counts.get(previous_name, 0)
        if previous * weight + current >= limit:
            return False, current, previous
        cache.set(current_name, current + 1, timeout=2 * window + 1)
        return True, current + 1, previous


def _wait(current, previous, limit, window, into):
    """Whole seconds, at least 1, until a hit would pass again if no other hit came."""
    if limit <= 0:
        return window
    if current >= limit:
        # Not before the next window, where this one's count weighs less as the window slides on.
        seconds = window - into + window * (1 - limit / current)
    else:
        seconds = window * (1 - (limit - current) / previous) - into
    return max(1, math.floor(seconds + 1e-9) + 1)  # strictly after the edge, float error aside


def hit(key, limit, window):
    """Counts one hit against key unless it would pass the limit over the sliding window; returns
    0 when counted, else the seconds until a hit would pass (a refused hit is not counted).

    Fails open: with the shared cache unreachable, requests are served and a warning logged.
    """
    now = clock()
    current_name, previous_name, into, weight = _windows(key, window, now)
    try:
        allowed, current, previous = _count(current_name, previous_name, limit, weight, window)
    except CACHE_ERRORS:
        metrics.CACHE_FAILURES.inc()
        logger.warning("rate limits: the shared cache is unreachable; not limiting %s", key)
        return 0
    return 0 if allowed else _wait(current, previous, limit, window, into)


def release(key, window):
    """Takes back one counted hit() of key (a reserved failure that did not happen)."""
    current_name, previous_name, _, _ = _windows(key, window, clock())
    try:
        if client := _redis():
            _run(client, _RELEASE_SCRIPT, [current_name, previous_name])
            return
        with _local_lock:
            for name in (current_name, previous_name):
                if count := cache.get(name, 0):
                    cache.set(name, count - 1, timeout=2 * window + 1)
                    return
    except CACHE_ERRORS:
        metrics.CACHE_FAILURES.inc()


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
