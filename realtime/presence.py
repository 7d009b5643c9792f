"""Presence: a user is online while at least one of their sockets is open, on any process.

With Redis every socket is a member of `presence:<user>` and has a deadline in the sorted set
`presence:deadlines`, pushed forward by its process's heartbeat. When a process dies its
sockets' deadlines pass and any other process's reaper removes them, so nobody stays online
forever. Without Redis (one process) the counts live in memory.

The database column User.is_online follows: after every change `presence_apply` sets it from
the live count under the user's row lock, so concurrent connects and disconnects on several
processes always settle on the truth.
"""

import asyncio
import logging
import time
from collections import Counter

import redis
import redis.asyncio
from channels.db import database_sync_to_async
from django.conf import settings

from accounts.services import user_presence_apply

logger = logging.getLogger(__name__)

DEADLINES = "presence:deadlines"

# KEYS: user set, deadlines; ARGV: member, connection id, deadline -> sockets now open
_ADD = """
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return redis.call('SCARD', KEYS[1])
"""
# Removes one socket if it is still registered -> {removed, sockets left}
_REMOVE = """
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[1], ARGV[2])
return {removed, redis.call('SCARD', KEYS[1])}
"""


def _member(user_id, connection_id):
    return f"{user_id}:{connection_id}"


class RedisPresence:
    def __init__(self):
        self.client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        # Counts are read in the database thread, under the user's row lock.
        self.blocking_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        self.add = self.client.register_script(_ADD)
        self.remove = self.client.register_script(_REMOVE)

    async def connect(self, user_id, connection_id):
        deadline = time.time() + settings.PRESENCE_TTL
        await self.add(
            keys=[f"presence:{user_id}", DEADLINES], args=[_member(user_id, connection_id), connection_id, deadline]
        )

    async def disconnect(self, user_id, connection_id):
        await self.remove(
            keys=[f"presence:{user_id}", DEADLINES], args=[_member(user_id, connection_id), connection_id]
        )

    def count_blocking(self, user_id):
        return self.blocking_client.scard(f"presence:{user_id}")

    async def heartbeat(self, members):
        deadline = time.time() + settings.PRESENCE_TTL
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id, connection_id in members:
                pipe.zadd(DEADLINES, {_member(user_id, connection_id): deadline}, xx=True)
            await pipe.execute()

    async def reap(self):
        """Removes sockets whose process stopped beating; returns the users they belonged to."""
        expired = await self.client.zrangebyscore(DEADLINES, "-inf", time.time(), start=0, num=1000)
        users = set()
        for member in expired:
            user_id, _, connection_id = member.decode().partition(":")
            removed, _left = await self.remove(keys=[f"presence:{user_id}", DEADLINES], args=[member, connection_id])
            if removed:
                users.add(int(user_id))
        return users


class LocalPresence:
    def __init__(self):
        self.counts = Counter()

    async def connect(self, user_id, connection_id):
        self.counts[user_id] += 1

    async def disconnect(self, user_id, connection_id):
        self.counts[user_id] -= 1
        if self.counts[user_id] <= 0:
            del self.counts[user_id]

    def count_blocking(self, user_id):
        return self.counts.get(user_id, 0)

    async def heartbeat(self, members):
        pass

    async def reap(self):
        return set()


class Presence:
    """Connect/disconnect bookkeeping plus the heartbeat and reaper of this process."""

    def __init__(self):
        self.backend = None
        self.local = {}  # connection id -> user id, for the heartbeat
        self._task = None
        self._loop = None

    def _ensure_started(self):
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self.backend = RedisPresence() if settings.REDIS_URL else LocalPresence()
        self.local = {}
        self._task = loop.create_task(self._maintain())

    async def connect(self, user_id, connection_id):
        self._ensure_started()
        self.local[connection_id] = user_id
        await self.backend.connect(user_id, connection_id)
        await self.apply(user_id)

    async def disconnect(self, user_id, connection_id):
        self.local.pop(connection_id, None)
        try:
            await self.backend.disconnect(user_id, connection_id)
        finally:
            await self.apply(user_id)

    async def apply(self, user_id):
        await database_sync_to_async(user_presence_apply)(user_id=user_id, count_sockets=self.backend.count_blocking)

    async def _maintain(self):
        while True:
            await asyncio.sleep(settings.PRESENCE_HEARTBEAT)
            try:
                await self.backend.heartbeat([(user_id, cid) for cid, user_id in self.local.items()])
                for user_id in await self.backend.reap():
                    await self.apply(user_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("presence maintenance failed; retrying", exc_info=True)


presence = Presence()
