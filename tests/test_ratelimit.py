"""The sliding-window rate limiter (imserver/ratelimit.py) on both of its backends: a burst at
the end of one window and another at the start of the next pass about the rate, not twice it."""

import os

import pytest
from django.core.cache import cache
from django.test import override_settings

from imserver import ratelimit
from tests.accounts.test_auth import assert_error

BACKENDS = {
    "local": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    "redis": {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("REDIS_URL"),
            "KEY_PREFIX": "ratelimit-test",
        }
    },
}


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(params=list(BACKENDS))
def clock(request, settings, monkeypatch):
    if request.param == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("the Lua script needs Redis (set REDIS_URL)")
    settings.CACHES = BACKENDS[request.param]
    cache.clear()
    clock = Clock(1_000_000 * 60)  # the start of a minute window
    monkeypatch.setattr(ratelimit, "clock", clock)
    yield clock
    cache.clear()


def burst(key, n, limit=10, window=60):
    return sum(ratelimit.hit(key, limit, window) == 0 for _ in range(n))


def test_a_burst_across_a_window_edge_passes_about_the_rate(clock):
    clock.now += 59  # the last second of a window
    assert burst("k", 10) == 10
    clock.now += 2  # 1 s into the next: the burst weighs 59/60 of itself
    assert burst("k", 10) == 1  # a fixed window would have let 10 more through
    clock.now += 30  # half of the window slid past the burst: about half of it may go again
    assert burst("k", 10) == 5


def test_the_rate_holds_in_every_span_of_a_window(clock):
    passed = []
    for _ in range(600):  # ten windows, one try every second at twice the rate
        clock.now += 1
        passed.append(burst("k", 2, limit=30))
    for start in range(600 - 60):
        assert sum(passed[start : start + 60]) <= 30  # a fixed window would let 60 through across an edge
    assert sum(passed) >= 10 * 30 - 30  # and the rate is served, not less


def test_refused_hits_are_not_counted_and_retry_after_is_exact(clock):
    clock.now += 59
    burst("k", 10)
    clock.now += 2  # 1 s into the next window: 10 * 59/60 + 0 < 10 lets one more through
    assert burst("k", 10) == 1
    wait = ratelimit.hit("k", 10, 60)
    assert wait == 6  # 10 * (1 - (1 + t) / 60) + 1 < 10 from t > 5
    clock.now += wait - 1
    assert ratelimit.hit("k", 10, 60) > 0
    clock.now += 1
    assert ratelimit.hit("k", 10, 60) == 0


def test_a_full_current_window_waits_for_the_next(clock):
    assert burst("k", 12) == 10
    clock.now += 15
    assert ratelimit.hit("k", 10, 60) == 46  # 45 s to the edge, then the first second of the next


def test_release_takes_back_a_hit(clock):
    burst("k", 10)
    assert ratelimit.hit("k", 10, 60) > 0
    ratelimit.release("k", 60)
    assert ratelimit.hit("k", 10, 60) == 0


def test_release_after_the_window_turned_takes_from_the_previous(clock):
    clock.now += 59
    burst("k", 10)
    clock.now += 1  # into the next window: the previous one weighs 1 still
    ratelimit.release("k", 60)
    assert burst("k", 2) == 1


def test_keys_and_periods_are_separate(clock):
    burst("k", 10)
    assert burst("other", 10) == 10
    assert burst("k", 10, window=3600) == 10


def test_the_api_answers_429_with_retry_after(clock, user_api, settings):
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": "3/minute"}
    clock.now += 30
    for _ in range(3):
        assert user_api.get("/v1/users/search", {"query": "a"}).status_code == 200
    response = user_api.get("/v1/users/search", {"query": "a"})
    assert_error(response, 429)
    assert int(response["Retry-After"]) == 31  # the window's last 30 s, then the next's first
    clock.now += 31
    assert user_api.get("/v1/users/search", {"query": "a"}).status_code == 200  # 3 * 59/60 < 3
    assert_error(user_api.get("/v1/users/search", {"query": "a"}), 429)


def test_fails_open_when_redis_is_unreachable(user_api, settings):
    settings.RATE_LIMITS_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": "1/minute"}
    unreachable = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(CACHES={"default": unreachable}):
        for _ in range(2):
            assert user_api.get("/v1/users/search", {"query": "a"}).status_code == 200
