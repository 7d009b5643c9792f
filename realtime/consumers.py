"""The WebSocket protocol (contract 7): authenticate, resume, forward events, dispatch frames.

The consumer does no business work: client frames go to the owning app's handler through
FRAME_HANDLERS, server events arrive from the hub already encoded and are handed to the socket's
Delivery (realtime/delivery.py), which sends them in the user's event-id order, any gap being
filled from the event log.
"""

import asyncio
import functools
import logging
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from django.http.request import validate_host
from django.utils.module_loading import import_string
from rest_framework.exceptions import APIException, ValidationError
from rest_framework_simplejwt.exceptions import TokenError

from accounts.tokens import token_device_id, user_for_token, verified_access_token
from imserver import metrics
from imserver.api import _flatten_validation, dumps
from presence.registry import presence
from realtime import selectors
from realtime.bus import hub
from realtime.db import in_db_thread
from realtime.delivery import Delivery

logger = logging.getLogger(__name__)

# Client frame type -> "module.function(user_id, data)", run in a database thread; it acts (its
# service records any events) or raises an APIException, which the client gets as an error frame.
FRAME_HANDLERS = {
    "message_read": "chat.frames.message_read",
    "message_delivered": "chat.frames.message_delivered",
    "status_update": "presence.frames.status_update",
    "ice_candidate": "calls.frames.ice_candidate",
    "typing": "chat.frames.typing",
}
# "module.function(user_id)" run (in a database thread) after a live socket of the user closed
# and was counted out of presence.
CLOSED_HANDLERS = ("chat.frames.socket_closed",)

MAX_FRAME_BYTES = 64 * 1024
FRAME_RATE = 20  # client frames per second, sustained
FRAME_BURST = 100

CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_GONE = 4410
CLOSE_FLOOD = 4429  # too many frames, or too many sockets of the user
CLOSE_TOO_BIG = 1009
TOKEN_PROTOCOL_PREFIX = "bearer."


def _decode(raw_token):
    try:
        return verified_access_token(raw_token) if raw_token else None
    except TokenError:
        return None


@in_db_thread
def _open_session(token, since):
    """The live user behind the token (or None) and the event id the socket resumes after."""
    try:
        user = user_for_token(token)
    except APIException:
        return None, None
    return user, selectors.resume_position(user_id=user.pk, since=since)


@functools.cache
def _frame_handler(path):
    """A FRAME_HANDLERS entry, ready to await: imported on first use (the handlers' apps import
    realtime), then kept."""
    return in_db_thread(import_string(path))


def _origin_allowed(origin):
    if origin in settings.WEBSOCKET_ALLOWED_ORIGINS:
        return True
    host = urlsplit(origin).hostname
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


class EventConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.user_id = None
        self.device_id = None
        self.expiry = None
        self.counted = False  # holds one of the user's WS_MAX_PER_USER slots
        self.delivery = None
        self.closing = False
        self.tokens = FRAME_BURST
        self.tokens_at = time.monotonic()

        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.scope["headers"]}
        origin = headers.get("origin")
        if origin and not _origin_allowed(origin):
            await self.close()  # before accept: the browser gets an HTTP 403
            return

        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        raw_token = (query.get("token") or [None])[0]
        # Browsers can't set headers: the token may come as a subprotocol "bearer.<token>",
        # offered beside the protocol the server is to select. The token one is never selected:
        # the handshake response would carry the token back (into proxies' logs).
        subprotocol = None
        for offered in self.scope.get("subprotocols", []):
            if offered.startswith(TOKEN_PROTOCOL_PREFIX):
                raw_token = raw_token or offered[len(TOKEN_PROTOCOL_PREFIX) :]
            elif subprotocol is None:
                subprotocol = offered
        token = _decode(raw_token)
        await self.accept(subprotocol)
        if token is None:
            # Accepted first so that the app sees the code (a refused handshake is just a 403).
            await self.close(CLOSE_UNAUTHORIZED)
            return

        # Listen before reading the resume position: an event committed after that read is
        # then certain to reach this socket live, one committed before it is in the log.
        await hub.start()
        user_id = int(token.get("user_id", 0))
        self.delivery = Delivery(user_id, send=self.send, close=self.close_from_server)
        hub.register(user_id, self)
        try:
            live = await self._go_live(token, user_id, (query.get("since") or [None])[0])
        except BaseException:
            hub.unregister(user_id, self)
            raise
        if not live:
            hub.unregister(user_id, self)
            return
        # An access token is only good until it expires; the app reconnects with a fresh one.
        remaining = token["exp"] - time.time()
        self.expiry = asyncio.get_running_loop().call_later(
            max(remaining, 0), self.close_from_server, CLOSE_UNAUTHORIZED
        )

    async def _go_live(self, token, user_id, since):
        """Checks the user, replays what the socket missed and counts it in; False if closed."""
        try:
            user, self.delivery.last_id = await _open_session(token, since)
        except selectors.ResumeError as exc:
            await self._send_error(exc.code, str(exc), "connect")
            await self.close(CLOSE_GONE if exc.code == 410 else CLOSE_BAD_REQUEST)
            return False
        if user is None:
            await self.close(CLOSE_UNAUTHORIZED)
            return False
        self.user_id = user_id
        self.device_id = token_device_id(token)
        self.connection_id = uuid.uuid4().hex
        # Counted in at once (so a disconnect of another device cannot see zero sockets), before
        # any replay: a user past WS_MAX_PER_USER sockets on all processes gets none (contract 23).
        if not await presence.count_in(self.user_id, self.connection_id, self.device_id):
            await self.close(CLOSE_FLOOD)
            return False
        self.counted = True
        if since is not None:
            await self._catch_up()
        metrics.OPEN_SOCKETS.inc()
        self.delivery.go_live()
        # The database and the watchers follow in the background, the socket is live already.
        self.presence = asyncio.ensure_future(presence.apply(self.user_id))
        return True

    async def disconnect(self, code):
        self.closing = True
        if self.user_id is None:
            return
        if self.expiry is not None:
            self.expiry.cancel()
        hub.unregister(self.user_id, self)
        self.delivery.cancel()
        if self.delivery.live:
            metrics.OPEN_SOCKETS.dec()
            try:
                await self.presence  # online before offline
            except Exception:  # logged; the socket must still be counted out
                logger.exception("presence update failed for user %s", self.user_id)
        if self.counted:  # also when the replay failed: its slot is freed
            await presence.disconnect(self.user_id, self.connection_id)
            for handler in CLOSED_HANDLERS:
                try:
                    await _frame_handler(handler)(self.user_id)
                except Exception:
                    logger.exception("%s failed for user %s", handler, self.user_id)

    # --- server -> client: the hub's side, handed to the socket's Delivery ----------------

    def deliver(self, event_id, text):
        """Called by the hub for every frame addressed to this user (event_id None: ephemeral)."""
        self.delivery.push(event_id, text)

    def resync(self):
        """The bus reconnected: whatever it lost is in the event log."""
        self.delivery.resync()

    def close_from_server(self, code):
        if not self.closing:
            self.closing = True
            if self.delivery is not None:
                self.delivery.stop()
            asyncio.ensure_future(self.close(code))

    async def _catch_up(self):
        """Replays, before the socket goes live, what it missed after its `since`."""
        await self.delivery.catch_up()

    # --- client -> server -------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if not self._take_token():
            self.close_from_server(CLOSE_FLOOD)
            return
        if text_data is None:
            await self._send_error(400, "Binary frames are not supported; send JSON text", None)
            return
        if len(text_data) > MAX_FRAME_BYTES // 4 and len(text_data.encode()) > MAX_FRAME_BYTES:
            self.close_from_server(CLOSE_TOO_BIG)
            return
        try:
            frame = orjson.loads(text_data)
        except orjson.JSONDecodeError:
            await self._send_error(400, "Frame is not valid JSON", None)
            return
        frame_type = frame.get("type") if isinstance(frame, dict) else None
        data = frame.get("data", {}) if isinstance(frame, dict) else None
        if not isinstance(frame_type, str):
            await self._send_error(400, "Frame must be an object with a string 'type'", None)
            return
        if not isinstance(data, dict):
            await self._send_error(400, "'data' must be an object", frame_type)
            return
        if frame_type == "ping":
            await self._pong(data)
            return
        handler = FRAME_HANDLERS.get(frame_type)
        if handler is None:
            await self._send_error(400, f"Unknown frame type '{frame_type}'", frame_type)
            return
        try:
            await _frame_handler(handler)(self.user_id, data)
        except ValidationError as exc:
            await self._send_error(400, _flatten_validation(exc.detail)[1], frame_type)
        except APIException as exc:
            # Contract 7: a frame the server will not act on (not yours, a finished call ...) is
            # a 400 whatever the same refusal's REST status; throttling and a server-side failure
            # keep their own.
            code = exc.status_code if exc.status_code >= 500 or exc.status_code == 429 else 400
            await self._send_error(code, str(exc.detail), frame_type)
        except DatabaseError:
            logger.exception("websocket frame %s of user %s failed", frame_type, self.user_id)
            await self._send_error(503, "The service is briefly unavailable; send the frame again", frame_type)
        except Exception:
            logger.exception("websocket frame %s of user %s failed", frame_type, self.user_id)
            await self._send_error(500, "The server failed to handle the frame", frame_type)

    async def _pong(self, data):
        timestamp = data.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
            await self._send_error(400, "ping needs a numeric data.timestamp", "ping")
            return
        await self.send(dumps({"type": "pong", "data": {"timestamp": timestamp}}).decode())

    async def _send_error(self, code, message, ref_type):
        await self.send(
            dumps({"type": "error", "data": {"code": code, "message": message, "ref_type": ref_type}}).decode()
        )

    def _take_token(self):
        now = time.monotonic()
        self.tokens = min(FRAME_BURST, self.tokens + (now - self.tokens_at) * FRAME_RATE)
        self.tokens_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
