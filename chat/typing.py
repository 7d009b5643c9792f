"""Typing indicators (contract 14): ephemeral frames to the other members, never stored.

The relay is the hot path of a chatty group and reads no database once warm: the members of a
conversation and the typist's name and audience rule (contacts.selectors.typing_hidden_from) are
kept in process caches that the bus clears when memberships, blocks, settings or the name change
(realtime.cache). The throttle and the record of where a user is typing live in Redis (in memory
without it, the one-process embedded default), so they hold across processes.
"""

import functools
import logging
import threading
import time

import redis
from django.conf import settings
from rest_framework.exceptions import NotFound

from accounts.models import User
from chat.selectors import member_ids
from contacts.selectors import typing_hidden_from
from imserver.api import format_id
from realtime import events
from realtime.cache import MEMBERS, USERS, BusCache

logger = logging.getLogger(__name__)

START, STOP = "start", "stop"
THROTTLE_MS = 3000  # at most one relayed start per user and conversation in this time
EXPIRES_IN = 6  # seconds a client shows a typist without a new start
MAX_GROUP = 100  # no typing in larger groups

_members = BusCache(MEMBERS)
_typists = BusCache(USERS)


def _typist(user_id):
    """(name, hidden_from) of a typist; hidden_from None: their typing is shown to nobody."""
    name = User.objects.filter(pk=user_id).values_list("nickname", "username").first()
    return ((name[0] or name[1]) if name else "", typing_hidden_from(user_id))


class _RedisState:
    """typing:t:<user>:<conversation> throttles starts; typing:in:<user> holds the conversations
    the user is shown typing in, each with the time that showing expires."""

    # Every send asks this (typing_stop_rollback_unsafe): one command, not a MULTI of two.
    STOP = """
    local shown_until = redis.call('ZSCORE', KEYS[1], ARGV[1])
    if shown_until then redis.call('ZREM', KEYS[1], ARGV[1]) end
    return shown_until
    """

    def __init__(self, url):
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._stop_script = self.client.register_script(self.STOP)

    def start(self, user_id, conversation_id):
        if not self.client.set(f"typing:t:{user_id}:{conversation_id}", 1, nx=True, px=THROTTLE_MS):
            return False
        key = f"typing:in:{user_id}"
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {conversation_id: time.time() + EXPIRES_IN})
            pipe.expire(key, EXPIRES_IN)
            pipe.execute()
        return True

    def stop(self, user_id, conversation_id):
        until = self._stop_script(keys=[f"typing:in:{user_id}"], args=[conversation_id])
        return until is not None and float(until) > time.time()

    def stop_all(self, user_id):
        with self.client.pipeline() as pipe:
            pipe.zrangebyscore(f"typing:in:{user_id}", time.time(), "+inf")
            pipe.delete(f"typing:in:{user_id}")
            shown, _ = pipe.execute()
        return [int(conversation_id) for conversation_id in shown]


class _LocalState:
    def __init__(self):
        self.lock = threading.Lock()
        self.throttled = {}  # (user, conversation) -> monotonic time the throttle ends
        self.shown = {}  # user -> {conversation: monotonic time the showing ends}

    def start(self, user_id, conversation_id):
        now = time.monotonic()
        with self.lock:
            if self.throttled.get((user_id, conversation_id), 0) > now:
                return False
            if len(self.throttled) > 10_000:
                self.throttled = {key: end for key, end in self.throttled.items() if end > now}
            self.throttled[(user_id, conversation_id)] = now + THROTTLE_MS / 1000
            self.shown.setdefault(user_id, {})[conversation_id] = now + EXPIRES_IN
        return True

    def stop(self, user_id, conversation_id):
        with self.lock:
            until = self.shown.get(user_id, {}).pop(conversation_id, None)
            if not self.shown.get(user_id, True):
                del self.shown[user_id]
        return until is not None and until > time.monotonic()

    def stop_all(self, user_id):
        now = time.monotonic()
        with self.lock:
            shown = self.shown.pop(user_id, {})
        return [conversation_id for conversation_id, until in shown.items() if until > now]


@functools.cache
def _state_for(url):
    return _RedisState(url) if url else _LocalState()


def _state():
    return _state_for(settings.REDIS_URL)


def _conversation_members(conversation_id):
    return _members.get(conversation_id, lambda: frozenset(member_ids(conversation_id)))


def _relay(user_id, conversation_id, members, state):
    name, hidden_from = _typists.get(user_id, lambda: _typist(user_id))
    if hidden_from is None:
        return
    data = {
        "conversation_id": format_id("c", conversation_id),
        "user_id": str(user_id),
        "user_name": name,
        "state": state,
        "expires_in": EXPIRES_IN,
    }
    events.publish_rollback_unsafe(members - hidden_from - {user_id}, "typing", data)


def typing_relay_rollback_unsafe(*, user_id: int, conversation_id: int, state: str = START) -> None:
    """The client's typing frame: 404 unless a member; a start is relayed at most once per
    THROTTLE_MS, a stop only when it ends a start that was; others are dropped silently."""
    members = _conversation_members(conversation_id)
    if user_id not in members:
        raise NotFound("Conversation not found")
    if len(members) > MAX_GROUP:
        return
    if _state().start(user_id, conversation_id) if state == START else _state().stop(user_id, conversation_id):
        _relay(user_id, conversation_id, members, state)


def typing_stop_rollback_unsafe(*, user_id: int, conversation_id: int) -> None:
    """The user sent a message there: the members stop showing them typing (if they did)."""
    try:
        shown = _state().stop(user_id, conversation_id)
    except redis.RedisError:  # the send went through; the members' apps expire the typing
        logger.warning("typing: Redis unavailable; no stop after user %s sent", user_id)
        return
    if shown:
        _relay(user_id, conversation_id, _conversation_members(conversation_id), STOP)


def typing_stop_all_rollback_unsafe(*, user_id: int) -> None:
    """The user's last socket closed: a stop wherever they are shown typing."""
    for conversation_id in _state().stop_all(user_id):
        members = _conversation_members(conversation_id)
        if user_id in members:
            _relay(user_id, conversation_id, members, STOP)
