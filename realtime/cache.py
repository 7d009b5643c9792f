"""Process-local caches of database reads for hot ephemeral paths (the typing relay), kept
fresh through the bus: a write that changes what an entry was read from drops it on every
process once it commits (`realtime.events.invalidate_on_commit`), so the change takes effect
for the next frame everywhere.

An entry is trusted only while this process hears the bus: with Redis, while the hub is
subscribed (a process without sockets, or one whose subscription dropped, loads every time;
a resubscription clears everything, since drops may have been missed meanwhile); without Redis
(one process) always, as drops are applied in the writing process itself. A drop lost on its way
(the writer's publish failed while the subscription stayed up) is bounded by MAX_AGE.
"""

import threading
import time

from django.conf import settings

MAX_ENTRIES = 20_000
MAX_AGE = 60  # seconds an entry is used at most, whatever the bus says

# Topics, keyed by the id of what changed: a conversation's memberships; a user's name, blocks
# (both sides of one) or privacy settings.
MEMBERS = "members"
USERS = "users"

_caches: dict[str, list["BusCache"]] = {}
_listening = False


class BusCache:
    """key -> value loaded by `load()`; entries of `topic` dropped by key through the bus.
    A falsy value is not kept (e.g. the members of a conversation that does not exist yet)."""

    def __init__(self, topic: str):
        self.topic = topic
        self._entries = {}
        self._generation = 0  # moves on every drop: a load that raced one is not kept
        self._lock = threading.Lock()
        _caches.setdefault(topic, []).append(self)

    def get(self, key, load):
        if not trusted():
            return load()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            return entry[0]
        generation = self._generation
        value = load()
        with self._lock:
            if value and generation == self._generation:
                self._entries.pop(key, None)  # re-inserted last: the oldest go first when full
                if len(self._entries) >= MAX_ENTRIES:
                    del self._entries[next(iter(self._entries))]
                self._entries[key] = (value, now + MAX_AGE)
        return value

    def drop(self, keys):
        with self._lock:
            self._generation += 1
            for key in keys:
                self._entries.pop(key, None)

    def clear(self):
        with self._lock:
            self._generation += 1
            self._entries.clear()


def trusted() -> bool:
    return _listening or not settings.REDIS_URL


def dropped(topic: str, keys) -> None:
    """What changed (called by the hub for every process's invalidations, and by the writer)."""
    for cache in _caches.get(topic, ()):
        cache.drop(keys)


def listening(on: bool) -> None:
    """The hub's subscription came up (everything cached before is suspect) or went down."""
    global _listening
    for caches in _caches.values():
        for cache in caches:
            cache.clear()
    _listening = on
