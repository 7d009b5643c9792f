"""The realtime bus: one Redis pub/sub channel shared by every server process, and in each
process one subscriber (the hub) that fans frames out to the local sockets.

Why not the channels-redis layer: its group_send costs one Redis round trip per recipient
and silently drops past a channel's capacity; one subscription per process with local fan-out
encodes each event once and costs one PUBLISH per event whatever the group size
(docs/performance.md). Without REDIS_URL the bus is in-process (the embedded default, one process).

Delivery here is at most once; exactly-once comes from the event log: every event carries its
per-user id, and a socket that sees a gap (or a bus reconnect) fills it from the database.
"""

import asyncio
import contextvars
import functools
import logging
import threading
from collections import defaultdict

import orjson
import redis
import redis.asyncio
from django.conf import settings

from imserver import metrics
from realtime import cache

logger = logging.getLogger(__name__)


def channel_name():
    """The pub/sub channel of this deployment. Pub/sub ignores Redis database numbers, so the
    name carries the database number and the key prefix: deployments (or test runs) sharing one
    Redis never hear each other."""
    return _channel_name(settings.REDIS_URL, settings.CACHES["default"].get("KEY_PREFIX", "imserver"))


@functools.cache
def _channel_name(redis_url, prefix):
    return f"{prefix}:{redis.connection.parse_url(redis_url).get('db', 0)}:bus"


EVENT, EPHEMERAL, CLOSE, INVALIDATE = "e", "x", "c", "i"


def event_message(type, data, recipients, own_user_id=None, own_data=None):
    message = {"k": EVENT, "t": type, "d": data, "r": recipients}
    if own_data is not None:
        message["o"] = own_user_id
        message["od"] = own_data
    return message


def ephemeral_message(type, data, user_ids):
    return {"k": EPHEMERAL, "t": type, "d": data, "u": user_ids}


def close_message(user_id, code, device_id=None):
    """Closes the user's sockets; with `device_id`, only those opened with that device's tokens."""
    message = {"k": CLOSE, "u": user_id, "c": code}
    if device_id is not None:
        message["d"] = device_id
    return message


def invalidate_message(topic, keys):
    """Drops the entries `keys` of every process's realtime.cache caches of `topic`."""
    return {"k": INVALIDATE, "t": topic, "keys": list(keys)}


def frame_text(type, data, event_id=None):
    """A WebSocket frame from already-encoded data (contract 7: {"type", "data"} plus "id")."""
    if event_id is None:
        return f'{{"type":"{type}","data":{data}}}'
    return f'{{"id":"{event_id}","type":"{type}","data":{data}}}'


_publisher = None
_publisher_lock = threading.Lock()


def _redis_publisher():
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            _publisher = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
            )
        return _publisher


def publish(messages):
    """Hands messages to every process's hub. Never raises: the write behind them is committed,
    and sockets recover anything lost here from the event log."""
    try:
        if settings.REDIS_URL:
            client = _redis_publisher()
            if len(messages) == 1:
                client.publish(channel_name(), orjson.dumps(messages[0]))
            else:
                with client.pipeline(transaction=False) as pipe:
                    for message in messages:
                        pipe.publish(channel_name(), orjson.dumps(message))
                    pipe.execute()
        else:
            hub.dispatch_threadsafe(messages)
        metrics.EVENTS_PUBLISHED.inc(len(messages))
    except Exception:
        logger.warning("realtime bus publish failed; sockets will catch up from the event log", exc_info=True)


class Hub:
    """This process's sockets by user, and the subscriber that feeds them."""

    def __init__(self):
        self.connections = defaultdict(set)
        self.loop = None
        self._subscriber = None
        self.capture = None  # tests: a list that receives every published message

    async def start(self):
        """Subscribes this process to the bus (once per event loop); every caller returns only
        once Redis has confirmed the subscription, so nothing published after is missed."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self._ready = asyncio.Event()
            if settings.REDIS_URL:
                self._subscriber = loop.create_task(self._subscribe_forever(self._ready))
            else:
                self._ready.set()
        await self._ready.wait()

    def register(self, user_id, connection):
        self.connections[user_id].add(connection)

    def unregister(self, user_id, connection):
        sockets = self.connections.get(user_id)
        if sockets is not None:
            sockets.discard(connection)
            if not sockets:
                del self.connections[user_id]

    def local_connection_count(self):
        return sum(len(sockets) for sockets in self.connections.values())

    def dispatch_threadsafe(self, messages):
        if self.capture is not None:
            self.capture.extend(messages)
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.dispatch(messages)
        else:
            # A fresh context: the publishing thread's (a request's) must not leak into sockets.
            loop.call_soon_threadsafe(self.dispatch, messages, context=contextvars.Context())

    def dispatch(self, messages):
        for message in messages:
            kind = message["k"]
            if kind == EVENT:
                self._dispatch_event(message)
            elif kind == EPHEMERAL:
                text = frame_text(message["t"], message["d"])
                for user_id in message["u"]:
                    for connection in tuple(self.connections.get(user_id, ())):
                        connection.deliver(None, text)
            elif kind == INVALIDATE:
                cache.dropped(message["t"], message["keys"])
            elif kind == CLOSE:
                device_id = message.get("d")
                for connection in tuple(self.connections.get(message["u"], ())):
                    if device_id is None or connection.device_id == device_id:
                        connection.close_from_server(message["c"])

    def _dispatch_event(self, message):
        type, data, own_user_id = message["t"], message["d"], message.get("o")
        for user_id, event_id in message["r"]:
            sockets = self.connections.get(user_id)
            if not sockets:
                continue
            payload = message["od"] if user_id == own_user_id else data
            text = frame_text(type, payload, event_id)
            for connection in tuple(sockets):
                connection.deliver(event_id, text)

    async def _subscribe_forever(self, ready):
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, health_check_interval=15)
        while True:
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel_name())
                    # Until Redis confirms it, a publish may still miss us.
                    while (await pubsub.get_message(timeout=5) or {}).get("type") != "subscribe":
                        pass
                    if ready.is_set():
                        # Sockets were let in before this subscription (after a failure) and may
                        # have missed events since; whatever was published is in the event log.
                        logger.info("realtime bus reconnected; resyncing %d sockets", self.local_connection_count())
                        for sockets in list(self.connections.values()):
                            for connection in tuple(sockets):
                                connection.resync()
                    cache.listening(True)
                    ready.set()
                    while True:
                        message = await pubsub.get_message(timeout=30)
                        if message is not None and message["type"] == "message":
                            self.dispatch([orjson.loads(message["data"])])
            except asyncio.CancelledError:
                cache.listening(False)
                raise
            except Exception:
                cache.listening(False)
                logger.warning("realtime bus subscription lost; retrying", exc_info=True)
                ready.set()  # sockets work meanwhile: events reach them by the resync that follows
                await asyncio.sleep(1)


hub = Hub()


def bus_ping():
    """Raises if the bus cannot be reached (the in-process bus always can)."""
    if settings.REDIS_URL:
        _redis_publisher().ping()
