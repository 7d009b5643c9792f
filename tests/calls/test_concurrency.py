"""Nobody ends up in two live calls, however many start at once (row locks: real PostgreSQL)."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from calls import selectors, services
from calls.models import Call
from chat import services as chat_services
from chat.models import Message
from imserver.api import Conflict
from tests.calls.test_api import OFFER
from tests.conftest import events_of, is_postgres, make_user, private_chat

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://"),
]


@pytest.fixture(autouse=True)
def slow_check(monkeypatch):
    """A pause between "is anyone busy?" and storing the call: without the locks, concurrent
    starts would all pass the check before any of them commits."""
    original = selectors.in_live_call

    def in_live_call(user_id):
        busy = original(user_id)
        time.sleep(0.05)
        return busy

    monkeypatch.setattr(selectors, "in_live_call", in_live_call)


def at_once(func, args_list):
    """Runs func(*args) for every args in threads released together; returns the results
    (Conflict counts as no result)."""
    barrier = threading.Barrier(len(args_list))
    results, errors = [], []

    def run(*args):
        try:
            barrier.wait()
            results.append(func(*args))
        except Conflict:
            pass
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    return results


def start(caller, callee):
    return services.call_start(caller=caller, target_user_id=callee.pk, type="audio", offer_sdp=OFFER)


def start_all(pairs):
    """Starts a call for every (caller, callee) pair at the same moment; returns the calls made."""
    return at_once(start, pairs)


def assert_one_live_call_per_user():
    live = Call.objects.filter(status__in=Call.LIVE).values_list("caller_id", "callee_id")
    parties = [user for pair in live for user in pair]
    assert len(parties) == len(set(parties))


def test_many_callers_one_callee():
    callee = make_user("callee")
    callers = [make_user(f"caller{n}") for n in range(8)]
    made = start_all([(caller, callee) for caller in callers])
    assert len(made) == 1
    assert_one_live_call_per_user()


def test_calling_each_other_at_once():
    for n in range(5):
        alice, bob = make_user(f"alice{n}"), make_user(f"bob{n}")
        private_chat(alice, bob)  # else creating it would serialize the two starts by itself
        assert len(start_all([(alice, bob), (bob, alice)])) == 1
    assert_one_live_call_per_user()


def test_a_ring_of_callers():
    users = [make_user(f"u{n}") for n in range(6)]
    start_all([(users[n], users[(n + 1) % 6]) for n in range(6)])
    assert Call.objects.exists()
    assert_one_live_call_per_user()


def test_expiring_in_several_processes_misses_each_call_once(monkeypatch):
    pairs = [(make_user(f"caller{n}"), make_user(f"callee{n}")) for n in range(6)]
    for caller, callee in pairs:
        start(caller, callee)
    Call.objects.update(ring_deadline=timezone.now() - timedelta(seconds=1))
    original = services.call_status_event

    def slow_event(call):  # holds each claimed call a while, as a busy process would
        time.sleep(0.02)
        return original(call)

    monkeypatch.setattr(services, "call_status_event", slow_event)
    assert sum(at_once(services.calls_expire, [()] * 4)) == 6
    assert set(Call.objects.values_list("status", flat=True)) == {"missed"}
    for user in (user for pair in pairs for user in pair):
        assert [e["data"]["status"] for e in events_of(user, "call_status")] == ["missed"]
    assert Message.objects.filter(type="call").count() == 6


def test_ending_a_call_while_a_message_is_sent_in_its_conversation(monkeypatch):
    """The send holds the conversation and then needs the users' event counters; the hang-up must
    take the conversation before those counters, or the two deadlock (one of them fails)."""
    caller, callee = make_user("caller"), make_user("callee")
    call = start(caller, callee)
    services.call_accept(user=callee, call_id=call.pk, answer_sdp=OFFER)
    conversation_locked = threading.Event()
    original = chat_services.new_message_event

    def slow_event(message, *args):  # the send, between its conversation lock and its events
        if message.type == Message.Type.TEXT:
            conversation_locked.set()
            time.sleep(0.3)
        return original(message, *args)

    monkeypatch.setattr(chat_services, "new_message_event", slow_event)
    errors = []

    def run(func):
        try:
            func()
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    send = threading.Thread(target=run, args=(lambda: send_text(callee, call.conversation_id),))
    send.start()
    assert conversation_locked.wait(5)
    run(lambda: services.call_end(user=caller, call_id=call.pk))
    send.join(10)
    assert errors == []
    assert list(Message.objects.order_by("seq").values_list("type", flat=True)) == ["text", "call"]
    assert [e["type"] for e in events_of(caller)][-2:] == ["call_status", "new_message"]


def send_text(sender, conversation_id):
    chat_services.message_send(sender=sender, conversation_id=conversation_id, content="still there?")
