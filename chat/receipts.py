"""The pacing of "delivered" receipts (contract 19): a sender gets at most one `message_status`
"delivered" per conversation every WINDOW_MS, the latest covering the earlier.

The first receipt of a window goes out at once and opens the window; later ones in it are kept
(the newest message id) with the window's end in a due set, and whichever process's periodic
flush (chat.jobs) comes first after that end sends the newest one and opens the next window.
The due entry is removed only after the flush committed: a process dying mid-flush leaves it
for another one a window later. In Redis, so that it holds across processes; in memory without
it (the one-process embedded default).
"""

import functools
import logging
import threading
import time

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

WINDOW_MS = 2000
DUE = "delivered:due"

# KEYS: window, pending, due; ARGV: message id, window ms, due member, now ms -> 1: send now
_RECEIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return 1 end
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
redis.call('ZADD', KEYS[3], 'NX', tonumber(ARGV[4]) + left, ARGV[3])
return 0
"""
# KEYS: due; ARGV: now ms, window ms -> [member, pending id, ...] whose window ended; each gets
# a new window, and its due entry moves to that window's end (the lease of this flush).
_CLAIM = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)
local claimed = {}
for _, member in ipairs(members) do
    redis.call('SET', 'delivered:w:' .. member, '1', 'PX', ARGV[2])
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), member)
    claimed[#claimed + 1] = member
    claimed[#claimed + 1] = redis.call('GET', 'delivered:p:' .. member) or '0'
end
return claimed
"""
# KEYS: pending, due; ARGV: flushed id, member: done unless a newer one came meanwhile
_DONE = """
if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[2])
end
"""


def _member(sender_id, conversation_id):
    return f"{sender_id}:{conversation_id}"


class _RedisPacing:
    def __init__(self, url):
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.receipt_script = self.client.register_script(_RECEIPT)
        self.claim_script = self.client.register_script(_CLAIM)
        self.done_script = self.client.register_script(_DONE)

    def receipt(self, sender_id, conversation_id, message_id):
        """Whether to send this receipt now (True), or it is held for the window's end."""
        member = _member(sender_id, conversation_id)
        keys = [f"delivered:w:{member}", f"delivered:p:{member}", DUE]
        try:
            return bool(self.receipt_script(keys=keys, args=[message_id, WINDOW_MS, member, int(time.time() * 1000)]))
        except redis.RedisError:  # unpaced rather than lost, and reads keep working
            logger.warning("delivered receipts: Redis unavailable; sending without pacing")
            return True

    def claim_due(self):
        flat = self.claim_script(keys=[DUE], args=[int(time.time() * 1000), WINDOW_MS])
        return [(*map(int, flat[i].decode().split(":")), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def done(self, sender_id, conversation_id, message_id):
        member = _member(sender_id, conversation_id)
        self.done_script(keys=[f"delivered:p:{member}", DUE], args=[message_id, member])


class _LocalPacing:
    def __init__(self):
        self.lock = threading.Lock()
        self.windows = {}  # (sender, conversation) -> monotonic end of its window
        self.pending = {}  # (sender, conversation) -> newest message id held back
        self.due = {}  # (sender, conversation) -> monotonic time to flush

    def receipt(self, sender_id, conversation_id, message_id):
        key, now = (sender_id, conversation_id), time.monotonic()
        with self.lock:
            end = self.windows.get(key, 0)
            if end <= now:
                if len(self.windows) > 10_000:
                    self.windows = {k: e for k, e in self.windows.items() if e > now}
                self.windows[key] = now + WINDOW_MS / 1000
                return True
            self.pending[key] = max(self.pending.get(key, 0), message_id)
            self.due.setdefault(key, end)
        return False

    def claim_due(self):
        now = time.monotonic()
        claimed = []
        with self.lock:
            for key, at in list(self.due.items()):
                if at <= now:
                    self.windows[key] = self.due[key] = now + WINDOW_MS / 1000
                    claimed.append((*key, self.pending.get(key, 0)))
        return claimed

    def done(self, sender_id, conversation_id, message_id):
        key = (sender_id, conversation_id)
        with self.lock:
            if self.pending.get(key, 0) == message_id:
                self.pending.pop(key, None)
                self.due.pop(key, None)


@functools.cache
def _pacing_for(url):
    return _RedisPacing(url) if url else _LocalPacing()


def pacing():
    return _pacing_for(settings.REDIS_URL)
