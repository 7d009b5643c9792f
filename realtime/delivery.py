"""In-order delivery to one socket (contract 7): each of the user's events exactly once, in
event-id order, whatever order the bus brings them in and whatever it loses.

The consumer owns one Delivery per socket and keeps the handshake and the frame table; this unit
knows nothing of the socket but two callables, so tests drive it without one
(tests/realtime/test_delivery.py). Frames queue in `pending` and are sent by one task (`drain`):
the next expected id goes out, a later one is held a moment for the ones before it (processes
publish after commit in their own order), and what is still missing then is read from the event
log, as is everything after a bus reconnect (`resync`).
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from imserver import metrics
from realtime import selectors
from realtime.bus import frame_text
from realtime.db import in_db_thread

logger = logging.getLogger(__name__)

MAX_PENDING_FRAMES = 5000  # a socket that falls this far behind is closed; it resumes with since
REORDER_WAIT = 0.2  # seconds an event waits for earlier ones before they are read from the log
REPLAY_PAGE = 500  # events read from the log at a time
RESYNC, FILL = "resync", "fill"  # markers queued beside frames
CLOSE_TOO_SLOW = 4408
CLOSE_SERVER_ERROR = 1011
# Exceptions ASGI servers raise when a send meets a closed socket (uvicorn, websockets).
CLIENT_GONE = {"ClientDisconnected", "ConnectionClosed", "ConnectionClosedOK", "ConnectionClosedError", "Disconnected"}


class Delivery:
    """The frames bound for one socket of `user_id`.

    `send(text)` puts one frame on the socket; `close(code)` has the socket closed by the server
    (past MAX_PENDING_FRAMES, or when a send fails). Nothing is sent before `go_live()` (frames
    that come earlier wait in `pending`) nor after `stop()`.
    """

    def __init__(self, user_id: int, *, send: Callable[[str], Awaitable[None]], close: Callable[[int], None]) -> None:
        self.user_id = user_id
        self.send = send
        self.close = close
        self.last_id = 0  # the newest event id the socket has: its resume position, then what was sent
        self.pending: deque[tuple[int | str | None, str | None]] = deque()
        self.held: dict[int, str] = {}  # event id -> frame, for events that arrived ahead of earlier ones
        self.gap_timer: asyncio.TimerHandle | None = None
        self.sender: asyncio.Task | None = None
        self.live = False
        self.stopped = False

    def push(self, event_id: int | None, text: str) -> None:
        """A frame addressed to the user (event_id None: ephemeral, sent as it comes)."""
        self._queue(event_id, text)

    def resync(self) -> None:
        """The bus reconnected: whatever it lost is in the event log."""
        metrics.RESYNCS.inc()
        self._queue(RESYNC, None)

    def go_live(self) -> None:
        """Starts sending (after the resume position is set and any replay is done)."""
        self.live = True
        self._kick()

    def stop(self) -> None:
        """The socket is closing: nothing more is queued or sent."""
        self.stopped = True

    def cancel(self) -> None:
        """The socket closed: the wait for a gap and the sending task end too."""
        self.stop()
        if self.gap_timer is not None:
            self.gap_timer.cancel()
        if self.sender is not None:
            self.sender.cancel()

    async def catch_up(self, upto: int | None = None) -> None:
        """Sends the user's events after last_id (up to `upto`) from the log."""
        while True:
            rows = await in_db_thread(selectors.events_after)(
                user_id=self.user_id, after=self.last_id, upto=upto, limit=REPLAY_PAGE
            )
            for event_id, type, data in rows:
                await self.send(frame_text(type, data, event_id))
                metrics.EVENTS_DELIVERED.inc()
                self.last_id = event_id
            if len(rows) < REPLAY_PAGE:
                self._forget_held()
                return

    def _queue(self, event_id: int | str | None, text: str | None) -> None:
        if self.stopped:
            return
        self.pending.append((event_id, text))
        if len(self.pending) > MAX_PENDING_FRAMES:
            metrics.BACKPRESSURE_CLOSES.inc()
            self.pending.clear()
            self._close(CLOSE_TOO_SLOW)
            return
        self._kick()

    def _close(self, code: int) -> None:
        self.stop()
        self.close(code)

    def _kick(self) -> None:
        if self.live and (self.sender is None or self.sender.done()):
            self.sender = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        """Sends what is pending, in order (run as one task at a time by _kick)."""
        try:
            while self.pending and not self.stopped:
                event_id, text = self.pending.popleft()
                if event_id is None:
                    await self.send(text)
                elif event_id == RESYNC:
                    await self.catch_up()
                elif event_id == FILL:
                    await self._fill_gap()
                elif event_id == self.last_id + 1:
                    await self.send(text)
                    metrics.EVENTS_DELIVERED.inc()
                    self.last_id = event_id
                    await self._send_held()
                elif event_id > self.last_id:
                    self._hold(event_id, text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A client gone mid-send is routine (each server names that its own way); else a bug.
            if isinstance(exc, OSError) or type(exc).__name__ in CLIENT_GONE:
                logger.info("websocket of user %s went away while sending", self.user_id)
            else:
                logger.exception("websocket delivery failed for user %s", self.user_id)
            self._close(CLOSE_SERVER_ERROR)

    def _hold(self, event_id: int, text: str) -> None:
        """An event ahead of the next expected one: processes publish after commit in their own
        order, so the missing ones are usually a moment behind. Wait for them a little; after
        that the log has them (ids are allocated in commit order)."""
        self.held[event_id] = text
        if self.gap_timer is None:
            self.gap_timer = asyncio.get_running_loop().call_later(REORDER_WAIT, self._queue, FILL, None)

    async def _send_held(self) -> None:
        while self.last_id + 1 in self.held:
            self.last_id += 1
            await self.send(self.held.pop(self.last_id))
            metrics.EVENTS_DELIVERED.inc()
        self._forget_held()

    def _forget_held(self) -> None:
        for event_id in [e for e in self.held if e <= self.last_id]:
            del self.held[event_id]
        if not self.held and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None

    async def _fill_gap(self) -> None:
        self.gap_timer = None
        if self.held:
            metrics.GAP_FILLS.inc()
            logger.warning(
                "realtime: reading events %d..%d of user %s from the log (not delivered by the bus)",
                self.last_id + 1,
                max(self.held),
                self.user_id,
            )
            await self.catch_up(upto=max(self.held))
