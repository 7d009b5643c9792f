"""Presence: a user is online while at least one of their sockets is open, on any process.

With Redis every socket is a member of `presence:<user>` and has a deadline in the sorted set
`presence:deadlines`. Each process re-registers its sockets on every heartbeat (which also
restores them after a Redis restart), and any process reaps sockets whose deadline passed (their
process died). Without Redis (one process) the counts live in memory. The same counts cap a
user's open sockets at WS_MAX_PER_USER on all processes together (`admit`, contract 23).

The database column User.is_online follows: after every change `user_presence_apply` sets it
from the live count under the user's row lock, so concurrent connects and disconnects on several
processes settle on the truth; a periodic reconciliation catches whatever a Redis outage made
it miss.
"""

import asyncio
import functools
import logging
import time
from collections import Counter

import redis
import redis.asyncio
from django.conf import settings

from accounts.models import User
from presence.services import user_presence_apply
from realtime.background import periodic
from realtime.db import in_db_thread

logger = logging.getLogger(__name__)

DEADLINES = "presence:deadlines"

# KEYS: user set, deadlines, user's devices hash; ARGV: member, connection id, deadline, device id
_ADD = """
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[4]) end
"""
# Counts a new socket in unless the user has WS_MAX_PER_USER live ones -> 1 if it was. Sockets past
# their deadline (their process died) are dropped on the way, so they free their slot in time even
# before a reap. KEYS as _ADD; ARGV: user id, connection id, deadline, device id, max, now
_ADMIT = """
local live = 0
for _, connection in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local member = ARGV[1] .. ':' .. connection
    local deadline = redis.call('ZSCORE', KEYS[2], member)
    if deadline and tonumber(deadline) > tonumber(ARGV[6]) then
        live = live + 1
    else
        redis.call('SREM', KEYS[1], connection)
        redis.call('ZREM', KEYS[2], member)
        redis.call('HDEL', KEYS[3], connection)
    end
end
if live >= tonumber(ARGV[5]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1] .. ':' .. ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[4]) end
return 1
"""
# Removes one socket if it is still registered -> 1 if it was
_REMOVE = """
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return removed
"""


def _keys(user_id):
    # presence:<user> holds the user's sockets; presence:devices:<user> maps a socket to the
    # device it was opened with (a push goes only to devices without one, contract 12).
    return [f"presence:{user_id}", DEADLINES, f"presence:devices:{user_id}"]


def _member(user_id, connection_id):
    return f"{user_id}:{connection_id}"


class RedisPresence:
    def __init__(self):
        # A blocking pool: in a connect storm, calls wait for a free connection instead of
        # failing (redis-py's default pool raises past its size).
        pool_options = {"max_connections": 32, "timeout": 10, "socket_timeout": 2, "socket_connect_timeout": 2}
        pool = redis.asyncio.BlockingConnectionPool.from_url(settings.REDIS_URL, **pool_options)
        self.client = redis.asyncio.Redis(connection_pool=pool)
        self.add = self.client.register_script(_ADD)
        self.admit_script = self.client.register_script(_ADMIT)
        self.remove = self.client.register_script(_REMOVE)
        # Counts are read in the database thread, under the user's row lock.
        self.blocking_client = redis.Redis(
            connection_pool=redis.BlockingConnectionPool.from_url(settings.REDIS_URL, **pool_options)
        )

    async def register(self, sockets):
        deadline = time.time() + settings.PRESENCE_TTL
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id, connection_id, device_id in sockets:
                await self.add(
                    keys=_keys(user_id),
                    args=[_member(user_id, connection_id), connection_id, deadline, device_id or ""],
                    client=pipe,
                )
            await pipe.execute()

    async def admit(self, user_id, connection_id, device_id, limit):
        now = time.time()
        args = [user_id, connection_id, now + settings.PRESENCE_TTL, device_id or "", limit, now]
        return bool(await self.admit_script(keys=_keys(user_id), args=args))

    async def unregister(self, user_id, connection_id):
        await self.remove(keys=_keys(user_id), args=[_member(user_id, connection_id), connection_id])

    def count_blocking(self, user_id):
        return self.blocking_client.scard(f"presence:{user_id}")

    def counts_blocking(self, user_ids):
        with self.blocking_client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.scard(f"presence:{user_id}")
            return dict(zip(user_ids, pipe.execute(), strict=True))

    def devices_blocking(self, user_ids):
        with self.blocking_client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hvals(f"presence:devices:{user_id}")
            return {int(device_id) for devices in pipe.execute() for device_id in devices}

    async def reap(self):
        """Removes sockets whose process stopped beating; returns the users they belonged to."""
        expired = await self.client.zrangebyscore(DEADLINES, "-inf", time.time(), start=0, num=1000)
        users = set()
        for member in expired:
            user_id, _, connection_id = member.decode().partition(":")
            if await self.remove(keys=_keys(user_id), args=[member, connection_id]):
                users.add(int(user_id))
        return users


class LocalPresence:
    def __init__(self):
        self.counts = Counter()
        self.devices = Counter()

    async def register(self, sockets):
        pass  # counted once, at connect

    async def admit(self, user_id, connection_id, device_id, limit):
        if self.counts[user_id] >= limit:
            return False
        self.counts[user_id] += 1
        if device_id is not None:
            self.devices[device_id] += 1
        return True

    async def unregister(self, user_id, connection_id):
        self.counts[user_id] -= 1
        if self.counts[user_id] <= 0:
            del self.counts[user_id]

    def count_blocking(self, user_id):
        return self.counts.get(user_id, 0)

    def counts_blocking(self, user_ids):
        return {user_id: self.counts.get(user_id, 0) for user_id in user_ids}

    def devices_blocking(self, user_ids):
        return set(self.devices)

    async def reap(self):
        return set()


class Presence:
    """Connect/disconnect bookkeeping for this process's sockets."""

    def __init__(self):
        self.backend = None
        self.local = {}  # connection id -> user id
        self.local_devices = {}  # connection id -> device id (sockets opened with a device's token)
        self._loop = None

    def _ensure_backend(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self.backend = RedisPresence() if settings.REDIS_URL else LocalPresence()
            self.local = {}
            self.local_devices = {}
        return self.backend

    async def count_in(self, user_id, connection_id, device_id=None) -> bool:
        """Counts a socket in (then `apply` brings the database along); False, and not counted, if
        the user already has WS_MAX_PER_USER sockets open on all processes together."""
        backend = self._ensure_backend()
        try:
            if not await backend.admit(user_id, connection_id, device_id, settings.WS_MAX_PER_USER):
                return False
        except redis.RedisError:
            # Let in uncounted rather than refuse everyone; the next heartbeat registers it.
            logger.warning("presence: Redis unavailable; the next heartbeat registers the socket")
        self.local[connection_id] = user_id
        if device_id is not None:
            self.local_devices[connection_id] = device_id
        return True

    async def disconnect(self, user_id, connection_id):
        self.local.pop(connection_id, None)
        device_id = self.local_devices.pop(connection_id, None)
        if isinstance(self.backend, LocalPresence) and device_id is not None:
            self.backend.devices[device_id] -= 1
            if self.backend.devices[device_id] <= 0:
                del self.backend.devices[device_id]
        try:
            await self._ensure_backend().unregister(user_id, connection_id)
        except redis.RedisError:
            logger.warning("presence: Redis unavailable; reconciliation will settle user %s", user_id)
            return
        await self.apply(user_id)

    async def apply(self, user_id):
        try:
            await in_db_thread(user_presence_apply)(user_id=user_id, count_sockets=self.backend.count_blocking)
        except redis.RedisError:
            logger.warning("presence: Redis unavailable; reconciliation will settle user %s", user_id)

    async def heartbeat(self):
        backend = self._ensure_backend()
        await backend.register(
            [
                (user_id, connection_id, self.local_devices.get(connection_id))
                for connection_id, user_id in self.local.items()
            ]
        )
        for user_id in await backend.reap():
            await self.apply(user_id)
        # Users with a socket here whom the database shows offline: their socket connected while
        # Redis was unreachable (it could not be counted then), or after a Redis restart another
        # process's reconciliation ran before this heartbeat put our sockets back. Now that they
        # are registered, they come online.
        if self.local:
            for user_id in await in_db_thread(_shown_offline)(set(self.local.values())):
                await self.apply(user_id)

    async def reconcile(self):
        """Users the database says are online but who have no socket anywhere go offline."""
        backend = self._ensure_backend()
        online = await in_db_thread(lambda: list(User.objects.filter(is_online=True).values_list("pk", flat=True)))()
        counts = await asyncio.to_thread(backend.counts_blocking, online) if online else {}
        for user_id, count in counts.items():
            if not count:
                await self.apply(user_id)


def live_device_ids(user_ids) -> set[int]:
    """The devices of these users with a socket open on any process (blocking: a worker thread).

    Without Redis only this process's sockets are known: the embedded default is one process.
    """
    backend = presence.backend if presence.backend is not None else _idle_backend()
    return backend.devices_blocking(list(user_ids))


@functools.cache
def _idle_backend():
    # A process that never served a socket (a push worker) asks Redis directly.
    return RedisPresence() if settings.REDIS_URL else LocalPresence()


def _shown_offline(user_ids):
    return list(User.objects.filter(pk__in=user_ids, is_online=False).values_list("pk", flat=True))


presence = Presence()


@periodic(settings.PRESENCE_HEARTBEAT)
async def presence_heartbeat():
    await presence.heartbeat()


@periodic(settings.PRESENCE_TTL)
async def presence_reconcile():
    await presence.reconcile()
