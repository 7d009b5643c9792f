"""The provider clients against fakes that speak FCM HTTP v1 and APNs HTTP/2 over TLS."""

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from push import providers
from push.notifications import Kind, Notification, Result, Target

MESSAGE = Notification(
    kind=Kind.MESSAGE,
    data={"type": "new_message", "event_id": "7", "conversation_id": "c3", "message_id": "m9", "badge": "2"},
    badge=2,
    title="Alice",
    body="hello",
    thread_id="c3",
    collapse_id="m9",
)
SILENT = Notification(kind=Kind.SILENT, data={"type": "conversation_read", "event_id": "8", "badge": "0"}, badge=0)
CALL = Notification(
    kind=Kind.CALL,
    data={"type": "incoming_call", "event_id": "9", "call_id": "call4", "badge": "1"},
    badge=1,
    title="Alice",
    collapse_id="call4",
    expires_at=datetime.now(UTC) + timedelta(seconds=45),
)


async def send(provider, notification, target):
    client = providers.clients()[provider]
    try:
        return await client.send(notification, target)
    finally:
        await client.aclose()


def test_no_provider_is_configured_by_default(settings):
    assert providers.enabled() == {"fcm": False, "apns": False}
    assert providers.clients() == {}


async def test_fcm_sends_a_data_message_with_an_oauth2_token_from_the_service_account(fake_fcm):
    client = providers.clients()["fcm"]
    target = Target(device_id=1, provider="fcm", token="fcm-token-1")
    assert (await client.send(MESSAGE, target)).result is Result.SENT
    assert (await client.send(SILENT, target)).result is Result.SENT
    await client.aclose()

    assert fake_fcm.token_requests == 1  # the access token is reused until it expires
    message, silent = fake_fcm.received
    assert message["token"] == "fcm-token-1"
    assert "notification" not in message  # a data message: the app draws it
    assert message["data"] == {**MESSAGE.data, "title": "Alice", "body": "hello"}
    assert message["android"] == {"priority": "HIGH", "collapse_key": "c3"}
    assert silent["data"] == SILENT.data
    assert silent["android"]["priority"] == "NORMAL"


async def test_fcm_call_push_expires_at_the_ring_deadline(fake_fcm):
    ringing = dataclasses.replace(CALL, expires_at=datetime.now(UTC) + timedelta(seconds=45))
    assert (await send("fcm", ringing, Target(1, "fcm", "t"))).result is Result.SENT
    ttl = fake_fcm.received[0]["android"]["ttl"]
    assert ttl.endswith("s") and 40 <= int(ttl[:-1]) <= 45


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "UNREGISTERED", Result.INVALID_TOKEN),
        (403, "SENDER_ID_MISMATCH", Result.INVALID_TOKEN),
        (503, "UNAVAILABLE", Result.RETRY),
        (429, "QUOTA_EXCEEDED", Result.RETRY),
        (500, "INTERNAL", Result.RETRY),
        (400, "INVALID_ARGUMENT", Result.FAILED),
    ],
)
async def test_fcm_errors(fake_fcm, status, code, expected):
    fake_fcm.fail("dead", status, code, retry_after=30)
    outcome = await send("fcm", MESSAGE, Target(1, "fcm", "dead"))
    assert outcome.result is expected
    if expected is Result.INVALID_TOKEN:
        assert outcome.invalid_token == "dead"
    if expected is Result.RETRY:
        assert outcome.retry_after == 30


async def test_apns_alert_over_http2_with_a_verified_provider_token(fake_apns):
    outcome = await send("apns", MESSAGE, Target(1, "apns", "apns-token-1"))
    assert outcome.result is Result.SENT
    assert fake_apns.http_versions == {"2"}
    (push,) = fake_apns.received
    assert push["token"] == "apns-token-1"
    assert push["headers"]["apns-push-type"] == "alert"
    assert push["headers"]["apns-topic"] == fake_apns.topic
    assert push["headers"]["apns-collapse-id"] == "m9"
    assert push["headers"]["apns-priority"] == "10"
    assert push["payload"]["aps"] == {
        "alert": {"title": "Alice", "body": "hello"},
        "badge": 2,
        "sound": "default",
        "mutable-content": 1,
        "thread-id": "c3",
    }
    # The data object's keys sit at the top level, beside aps.
    assert {key: push["payload"][key] for key in MESSAGE.data} == MESSAGE.data


async def test_apns_silent_push_shows_nothing(fake_apns):
    assert (await send("apns", SILENT, Target(1, "apns", "t"))).result is Result.SENT
    push = fake_apns.received[0]
    assert push["headers"]["apns-push-type"] == "background"
    assert push["headers"]["apns-priority"] == "5"
    assert push["payload"]["aps"] == {"content-available": 1, "badge": 0}


async def test_apns_incoming_call_goes_to_the_voip_token_and_expires_at_the_deadline(fake_apns):
    target = Target(1, "apns", "alert-token", voip_token="voip-token", call_push="voip")
    assert (await send("apns", CALL, target)).result is Result.SENT
    push = fake_apns.received[0]
    assert push["token"] == "voip-token"
    assert push["headers"]["apns-push-type"] == "voip"
    assert push["headers"]["apns-topic"] == f"{fake_apns.topic}.voip"
    assert int(push["headers"]["apns-expiration"]) == int(CALL.expires_at.timestamp())
    assert push["payload"]["call_id"] == "call4"


async def test_apns_incoming_call_without_callkit_is_a_time_sensitive_alert(fake_apns):
    target = Target(1, "apns", "alert-token", voip_token="voip-token", call_push="alert")
    assert (await send("apns", CALL, target)).result is Result.SENT
    push = fake_apns.received[0]
    assert push["token"] == "alert-token"
    assert push["headers"]["apns-push-type"] == "alert"
    assert push["payload"]["aps"]["interruption-level"] == "time-sensitive"


async def test_apns_preview_none_names_nobody(fake_apns):
    hidden = Notification(kind=Kind.MESSAGE, data={"type": "new_message", "event_id": "1", "badge": "1"}, badge=1)
    assert (await send("apns", hidden, Target(1, "apns", "t"))).result is Result.SENT
    assert fake_apns.received[0]["payload"]["aps"]["alert"] == {"loc-key": "NEW_MESSAGE"}


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (410, "Unregistered", Result.INVALID_TOKEN),
        (400, "BadDeviceToken", Result.INVALID_TOKEN),
        (503, "ServiceUnavailable", Result.RETRY),
        (429, "TooManyRequests", Result.RETRY),
        (400, "PayloadTooLarge", Result.FAILED),
    ],
)
async def test_apns_errors(fake_apns, status, reason, expected):
    fake_apns.fail("dead", status, reason)
    outcome = await send("apns", MESSAGE, Target(1, "apns", "dead"))
    assert outcome.result is expected


async def test_apns_provider_token_is_reused_then_renewed_before_an_hour(fake_apns):
    client = providers.clients()["apns"]
    target = Target(1, "apns", "t")
    for _ in range(3):
        assert (await client.send(MESSAGE, target)).result is Result.SENT
    assert len(fake_apns.provider_tokens) == 1
    token, _issued = client._provider_token
    client._provider_token = (token, time.time() - 51 * 60)  # 51 minutes old
    assert (await client.send(MESSAGE, target)).result is Result.SENT
    await client.aclose()
    assert len(fake_apns.provider_tokens) == 2


async def test_apns_expired_provider_token_is_renewed_and_the_push_resent(fake_apns):
    fake_apns.fail("t", 403, "ExpiredProviderToken")
    assert (await send("apns", MESSAGE, Target(1, "apns", "t"))).result is Result.SENT
    assert len(fake_apns.received) == 1
