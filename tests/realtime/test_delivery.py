"""In-order delivery (realtime/delivery.py) without a socket: frames fed in any order, lost,
repeated or too many, against a fake socket (a send and a close callable) and, where the unit
reads it, the real event log."""

import asyncio

import orjson
import pytest
from channels.db import database_sync_to_async
from prometheus_client import REGISTRY

from realtime import delivery
from realtime.bus import frame_text
from realtime.delivery import MAX_PENDING_FRAMES, Delivery
from tests.conftest import events_of, private_chat, send

WAIT = 0.05  # REORDER_WAIT in these tests: a gap is filled from the log after this long


@pytest.fixture(autouse=True)
def _short_reorder_wait(monkeypatch):
    monkeypatch.setattr(delivery, "REORDER_WAIT", WAIT)


class Socket:
    """What a Delivery sees of a socket: it sends frames and may close it with a code."""

    def __init__(self, fails_with=None):
        self.frames = []
        self.closed = []
        self.fails_with = fails_with

    async def send(self, text):
        if self.fails_with is not None:
            raise self.fails_with
        self.frames.append(orjson.loads(text))

    def close(self, code):
        self.closed.append(code)

    def ids(self):
        return [frame.get("id") for frame in self.frames]


def live_delivery(socket, *, user_id=1, last_id=0):
    unit = Delivery(user_id, send=socket.send, close=socket.close)
    unit.last_id = last_id
    unit.go_live()
    return unit


def event(event_id, type="new_message"):
    return frame_text(type, "{}", event_id)


async def settled(unit, seconds=0.0):
    """Lets the unit's sending task (and, after `seconds`, its gap timer) run to its end."""
    await asyncio.sleep(seconds)
    while unit.sender is not None and not unit.sender.done():
        await unit.sender
    await asyncio.sleep(0)


def sample(name):
    return REGISTRY.get_sample_value(name) or 0


class TestOrder:
    async def test_events_in_order_go_out_as_they_come(self):
        socket = Socket()
        unit = live_delivery(socket)
        for event_id in (1, 2, 3):
            unit.push(event_id, event(event_id))
        await settled(unit)
        assert socket.ids() == ["1", "2", "3"] and unit.last_id == 3

    async def test_events_out_of_order_are_put_back_in_order_within_the_wait(self):
        socket = Socket()
        unit = live_delivery(socket)
        unit.push(3, event(3))
        unit.push(2, event(2))
        await settled(unit)
        assert socket.ids() == [] and set(unit.held) == {2, 3}  # waiting for 1
        unit.push(1, event(1))
        await settled(unit)
        assert socket.ids() == ["1", "2", "3"]
        assert unit.held == {} and unit.gap_timer is None  # nothing left to read from the log
        await settled(unit, 2 * WAIT)
        assert socket.ids() == ["1", "2", "3"] and socket.closed == []  # no log read (no database here)

    async def test_duplicates_and_events_already_sent_are_dropped(self):
        socket = Socket()
        unit = live_delivery(socket, last_id=4)
        for event_id in (4, 5, 5, 3, 6, 5):
            unit.push(event_id, event(event_id))
        await settled(unit)
        assert socket.ids() == ["5", "6"]
        assert unit.held == {} and unit.gap_timer is None  # nor held: no log read for them

    async def test_an_ephemeral_frame_is_sent_at_once_even_behind_a_gap(self):
        socket = Socket()
        unit = live_delivery(socket)
        unit.push(2, event(2))
        unit.push(None, frame_text("typing", '{"state":"start"}'))
        await settled(unit)
        assert socket.frames == [{"type": "typing", "data": {"state": "start"}}]
        unit.push(1, event(1))
        await settled(unit)
        assert socket.ids() == [None, "1", "2"]

    async def test_nothing_is_sent_before_it_goes_live(self):
        socket = Socket()
        unit = Delivery(1, send=socket.send, close=socket.close)
        unit.push(1, event(1))
        await settled(unit)
        assert socket.frames == [] and len(unit.pending) == 1
        unit.go_live()
        await settled(unit)
        assert socket.ids() == ["1"]


class TestClosing:
    async def test_a_socket_too_far_behind_is_closed_with_4408_and_gets_nothing_more(self):
        socket = Socket()
        unit = Delivery(1, send=socket.send, close=socket.close)  # not live: frames pile up
        before = sample("imserver_websockets_closed_backpressure_total")
        for event_id in range(1, MAX_PENDING_FRAMES + 1):
            unit.push(event_id, event(event_id))
        assert socket.closed == []
        unit.push(MAX_PENDING_FRAMES + 1, event(MAX_PENDING_FRAMES + 1))
        assert socket.closed == [4408] and not unit.pending
        assert sample("imserver_websockets_closed_backpressure_total") == before + 1
        unit.push(1, event(1))
        unit.go_live()
        await settled(unit)
        assert socket.frames == [] and socket.closed == [4408]

    async def test_after_stop_nothing_is_sent(self):
        socket = Socket()
        unit = live_delivery(socket)
        unit.push(1, event(1))
        unit.stop()  # before the sending task ran
        unit.push(2, event(2))
        await settled(unit)
        assert socket.frames == []

    async def test_a_send_that_fails_closes_the_socket_with_1011(self):
        socket = Socket(fails_with=ConnectionResetError("peer gone"))
        unit = live_delivery(socket)
        unit.push(1, event(1))
        unit.push(2, event(2))
        await settled(unit)
        assert socket.closed == [1011] and unit.stopped

    async def test_cancel_ends_the_wait_for_a_gap(self):
        socket = Socket()
        unit = live_delivery(socket)
        unit.push(2, event(2))
        await settled(unit)
        timer = unit.gap_timer
        assert timer is not None
        unit.cancel()
        assert timer.cancelled()
        await settled(unit, 2 * WAIT)
        assert socket.frames == [] and socket.closed == []


@database_sync_to_async
def bobs_new_messages(alice, bob, count):
    """Sends bob `count` messages from alice; their frames as bob's event log has them."""
    conversation = private_chat(alice, bob)
    for n in range(count):
        send(alice, conversation, f"m{n}")
    return events_of(bob, "new_message")[-count:]


def pushed(frame):
    return frame_text(frame["type"], orjson.dumps(frame["data"]).decode(), frame["id"])


@pytest.mark.django_db(transaction=True)
class TestFromTheLog:
    async def test_a_gap_the_bus_does_not_fill_in_time_is_read_from_the_log(self, alice, bob):
        first, lost, third = await bobs_new_messages(alice, bob, 3)
        socket = Socket()
        unit = live_delivery(socket, user_id=bob.pk, last_id=int(first["id"]) - 1)
        fills = sample("imserver_gap_fills_total")
        unit.push(int(first["id"]), pushed(first))
        unit.push(int(third["id"]), pushed(third))
        await settled(unit)
        assert socket.frames == [first]  # the third waits for the second
        await settled(unit, 2 * WAIT)
        assert socket.frames == [first, lost, third]
        assert sample("imserver_gap_fills_total") == fills + 1
        assert unit.held == {} and unit.gap_timer is None
        unit.push(int(lost["id"]), pushed(lost))  # the bus brings it after all: not sent twice
        await settled(unit)
        assert socket.frames == [first, lost, third]

    async def test_resync_sends_what_the_bus_lost_once_and_drops_what_it_then_brings(self, alice, bob):
        frames = await bobs_new_messages(alice, bob, 3)
        socket = Socket()
        unit = live_delivery(socket, user_id=bob.pk, last_id=int(frames[0]["id"]) - 1)
        unit.push(int(frames[2]["id"]), pushed(frames[2]))  # held, waiting for the first two
        resyncs = sample("imserver_resyncs_total")
        unit.resync()
        await settled(unit)
        assert socket.frames == frames
        assert sample("imserver_resyncs_total") == resyncs + 1
        assert unit.held == {} and unit.gap_timer is None  # the held one was in the log
        for frame in frames:
            unit.push(int(frame["id"]), pushed(frame))
        await settled(unit, 2 * WAIT)
        assert socket.frames == frames

    async def test_catch_up_before_going_live_pages_through_the_log_then_live_takes_over(self, alice, bob, monkeypatch):
        monkeypatch.setattr(delivery, "REPLAY_PAGE", 2)
        frames = await bobs_new_messages(alice, bob, 5)
        socket = Socket()
        unit = Delivery(bob.pk, send=socket.send, close=socket.close)
        unit.last_id = int(frames[0]["id"]) - 1  # the socket's since
        unit.push(int(frames[3]["id"]), pushed(frames[3]))  # live frames during the replay
        unit.push(int(frames[4]["id"]), pushed(frames[4]))
        await unit.catch_up()
        assert socket.frames == frames and unit.last_id == int(frames[4]["id"])
        unit.go_live()
        await settled(unit)
        assert socket.frames == frames  # no duplicate at the seam

    async def test_catch_up_up_to_an_id_stops_there(self, alice, bob):
        frames = await bobs_new_messages(alice, bob, 3)
        socket = Socket()
        unit = Delivery(bob.pk, send=socket.send, close=socket.close)
        unit.last_id = int(frames[0]["id"]) - 1
        await unit.catch_up(upto=int(frames[1]["id"]))
        assert socket.frames == frames[:2]
