"""realtime.cache: process caches that the bus keeps fresh."""

import pytest

from realtime import cache
from realtime.bus import hub, invalidate_message


@pytest.fixture
def members():
    yield cache.BusCache("test-topic")
    cache._caches.pop("test-topic")


@pytest.fixture
def heard(settings):
    cache.listening(True)
    yield
    cache.listening(False)


def loader(values):
    calls = []

    def load():
        calls.append(1)
        return values.pop(0)

    return load, calls


def test_kept_until_the_bus_drops_it(members, heard):
    load, calls = loader([{1, 2}, {1, 2, 3}])
    assert members.get(7, load) == {1, 2} and members.get(7, load) == {1, 2} and len(calls) == 1
    hub.dispatch([invalidate_message("test-topic", [7])])
    assert members.get(7, load) == {1, 2, 3} and len(calls) == 2


def test_a_load_that_raced_a_drop_is_not_kept(members, heard):
    def load():
        cache.dropped("test-topic", [7])  # a write committed while we read
        return {1}

    assert members.get(7, load) == {1}
    load_again, calls = loader([{1, 2}])
    assert members.get(7, load_again) == {1, 2} and calls


def test_nothing_is_kept_while_the_bus_is_not_heard_with_redis(members, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/3"
    cache.listening(False)
    load, calls = loader([{1}, {1}])
    members.get(7, load), members.get(7, load)
    assert len(calls) == 2


def test_empty_answers_and_old_entries_are_not_used(members, heard, monkeypatch):
    load, calls = loader([frozenset(), {1}, {1, 2}])
    assert members.get(7, load) == frozenset() and members.get(7, load) == {1}
    monkeypatch.setattr(cache, "MAX_AGE", -1)
    members.drop([7])
    members.get(7, load)
    assert members.get(7, lambda: {9}) == {9}  # past MAX_AGE: read again
