"""The push pipeline end to end: a committed event -> the outbox -> a fake provider."""

import hashlib
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from accounts.models import Device
from push import providers
from push.sender import Sender
from realtime.models import EventOutbox
from tests.conftest import group_of, private_chat, send

pytestmark = pytest.mark.django_db(transaction=True)


def register(user, token, provider="fcm", **extra):
    return Device.objects.create(
        user=user,
        platform="android" if provider == "fcm" else "ios",
        push_provider=provider,
        push_token=token,
        push_token_hash=hashlib.sha256(token.encode()).hexdigest(),
        **extra,
    )


def push_round():
    async def round():
        sender = Sender(providers.clients())
        try:
            return await sender.send_due()
        finally:
            await sender.aclose()

    return async_to_sync(round)()


def test_no_outbox_rows_while_no_provider_is_configured(user, other_user):
    register(other_user, "t1")
    send(user, private_chat(user, other_user))
    assert not EventOutbox.objects.exists()


def test_a_message_is_pushed_once_to_each_offline_device_of_the_recipient_only(fake_fcm, user, other_user):
    phone, tablet = register(other_user, "phone"), register(other_user, "tablet")
    register(user, "senders-own")
    conversation = private_chat(user, other_user)
    message = send(user, conversation, "hello there")

    assert push_round() == 2
    pushes = {push["token"]: push for push in fake_fcm.received}
    assert set(pushes) == {"phone", "tablet"}  # never the sender's own device
    data = pushes["phone"]["data"]
    assert data["type"] == "new_message"
    assert data["conversation_id"] == f"c{conversation.pk}"
    assert data["message_id"] == f"m{message.pk}"
    assert data["badge"] == "1"
    assert data["title"] == user.display_name
    assert data["body"] == "hello there"
    assert data["event_id"].isdigit()
    assert not EventOutbox.objects.exists()
    assert push_round() == 0  # handled once
    assert {phone.pk, tablet.pk} == {d.pk for d in Device.objects.filter(user=other_user)}


def test_badge_counts_conversations_with_unread_messages(fake_fcm, user, other_user, stranger):
    register(other_user, "phone")
    send(user, private_chat(user, other_user))
    send(user, private_chat(user, other_user))
    send(stranger, private_chat(stranger, other_user))
    push_round()
    badges = [push["data"]["badge"] for push in fake_fcm.received]
    assert badges[-1] == "2"  # two conversations have unread messages, three messages in all


def test_text_is_cut_to_200_characters(fake_fcm, user, other_user):
    register(other_user, "phone")
    send(user, private_chat(user, other_user), "x" * 500)
    push_round()
    assert fake_fcm.received[0]["data"]["body"] == "x" * 200


def test_group_message_reaches_every_offline_member_but_the_sender(fake_fcm, user, other_user, stranger):
    for member, token in ((user, "u"), (other_user, "o"), (stranger, "s")):
        register(member, token)
    group = group_of(user, other_user, stranger)
    fake_fcm.received.clear()
    EventOutbox.objects.all().delete()
    send(user, group.conversation)
    push_round()
    assert sorted(push["token"] for push in fake_fcm.received) == ["o", "s"]


def test_a_dead_token_is_deleted(fake_fcm, user, other_user):
    device = register(other_user, "dead")
    fake_fcm.fail("dead", 404, "UNREGISTERED")
    send(user, private_chat(user, other_user))
    push_round()
    device.refresh_from_db()
    assert device.push_token == "" and device.push_token_hash is None
    assert not EventOutbox.objects.exists()
    send(user, private_chat(user, other_user))
    assert push_round() == 0


def test_provider_errors_are_retried_with_backoff_then_sent(fake_fcm, user, other_user):
    register(other_user, "flaky")
    register(other_user, "fine")
    fake_fcm.fail("flaky", 503, "UNAVAILABLE", times=2)
    send(user, private_chat(user, other_user))

    push_round()
    (entry,) = EventOutbox.objects.all()
    flaky = Device.objects.get(push_token="flaky")
    assert entry.remaining == [flaky.pk]  # only the device that failed is owed the push again
    assert push_round() == 0  # not due before its backoff
    for _ in range(2):
        EventOutbox.objects.update(not_before=timezone.now())  # the backoff has passed
        push_round()
    assert [push["token"] for push in fake_fcm.received].count("fine") == 1
    assert [push["token"] for push in fake_fcm.received].count("flaky") == 1
    assert fake_fcm.refused == [("flaky", 503, "UNAVAILABLE")] * 2
    assert not EventOutbox.objects.exists()


def test_incoming_call_is_a_voip_push_and_its_end_a_silent_one(fake_apns, user, other_user):
    from calls.services import call_end, call_start

    register(other_user, "alert-token", provider="apns", voip_token="voip-token")
    call = call_start(caller=user, target_user_id=other_user.pk, type="audio", offer_sdp="v=0")
    push_round()
    call_end(user=user, call_id=call.pk)
    push_round()
    by_type = {push["payload"]["type"]: push for push in fake_apns.received}
    ring, stop = by_type["incoming_call"], by_type["call_status"]
    assert ring["token"] == "voip-token"
    assert ring["headers"]["apns-push-type"] == "voip"
    assert ring["payload"]["type"] == "incoming_call"
    assert ring["payload"]["call_id"] == f"call{call.pk}"
    assert stop["headers"]["apns-push-type"] == "background"
    assert stop["payload"]["type"] == "call_status"
    # Silent; the badge counts the cancelled call's record in the conversation, unread.
    assert json.dumps(stop["payload"]["aps"]) == json.dumps({"content-available": 1, "badge": 1})


@pytest.mark.parametrize(
    ("preview", "title", "body"), [("full", "Alice", "secret plans"), ("sender", "Alice", None), ("none", None, None)]
)
def test_the_recipients_preview_setting_decides_what_the_push_shows(fake_fcm, user, other_user, preview, title, body):
    from contacts.services import privacy_settings_update

    register(other_user, "phone")
    privacy_settings_update(user=other_user, notification_preview=preview)
    send(user, private_chat(user, other_user), "secret plans")
    push_round()
    data = fake_fcm.received[0]["data"]
    assert data.get("title") == title and data.get("body") == body
    if preview == "none":
        assert "secret" not in json.dumps(fake_fcm.received[0]) and "Alice" not in json.dumps(fake_fcm.received[0])


@pytest.mark.parametrize("settings_change", [{"muted": True}, {"notify": "none"}, {"notify": "mentions"}])
def test_a_muted_or_quiet_conversation_pushes_no_message(fake_fcm, user, other_user, settings_change):
    from chat.services import conversation_settings_update

    register(other_user, "phone")
    conversation = private_chat(user, other_user)
    conversation_settings_update(user=other_user, conversation_id=conversation.pk, **settings_change)
    send(user, conversation)
    assert push_round() == 0
    conversation_settings_update(user=other_user, conversation_id=conversation.pk, muted=False, notify="all")
    send(user, conversation)
    assert push_round() == 1


def test_an_elapsed_mute_pushes_again_without_any_write(fake_fcm, user, other_user):
    from chat.models import Membership

    register(other_user, "phone")
    conversation = private_chat(user, other_user)
    Membership.objects.filter(conversation=conversation, user=other_user).update(
        muted=True, muted_until=timezone.now() - timedelta(minutes=1)
    )
    send(user, conversation)
    assert push_round() == 1


def test_push_outcomes_are_counted_for_prometheus(fake_fcm, user, other_user):
    from imserver import metrics

    def count(state):
        return metrics.PUSH_JOBS.labels(state)._value.get()

    queued, sent, retried = count("queued"), count("sent"), count("retried")
    register(other_user, "fine")
    register(other_user, "flaky")
    fake_fcm.fail("flaky", 503, "UNAVAILABLE")
    send(user, private_chat(user, other_user))
    assert count("queued") - queued == 1  # one job (the message's outbox row) for both devices
    push_round()
    assert (count("sent") - sent, count("retried") - retried) == (1, 1)
