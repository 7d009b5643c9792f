"""`manage.py run_worker` as a real process on PostgreSQL + Redis: a worker killed with SIGKILL in
the middle of a batch loses no push, and the resend carries the same collapse key and event id."""

import hashlib
import os
import subprocess
import sys
import time

import pytest
from django.utils import timezone

from accounts.models import Device, User
from realtime.models import EventOutbox
from tests import servers
from tests.conftest import group_of, send
from tests.servers import ROOT, cluster_marks

pytestmark = cluster_marks("push workers share the outbox through PostgreSQL")

MEMBERS = 150  # more than the sender's 100 concurrent pushes: a batch takes two slowed waves


def start_worker(fake, tmp_path, name):
    environment = {
        **os.environ,
        "DATABASE_URL": servers.test_database_url(),
        "PUSH_WORKER": "true",
        "FCM_CREDENTIALS_FILE": str(fake.credentials_file),
        "FCM_ENDPOINT": fake.url,
        "RATE_LIMITS": "off",
    }
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    process.log = log
    return process


def stop(process):
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=20)
    process.log.close()


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def members(db):
    users = User.objects.bulk_create(
        [User(username=f"member{i}", email=f"member{i}@example.com", nickname=f"M{i}") for i in range(MEMBERS)]
    )
    Device.objects.bulk_create(
        [
            Device(
                user=user,
                platform="android",
                push_provider="fcm",
                push_token=f"token-{user.pk}",
                push_token_hash=hashlib.sha256(f"token-{user.pk}".encode()).hexdigest(),
            )
            for user in users
        ]
    )
    return users


def test_a_worker_killed_mid_batch_loses_no_push_and_the_resend_collapses(fake_fcm, tmp_path, user, members):
    group = group_of(user, *members)
    fake_fcm.received.clear()
    EventOutbox.objects.all().delete()  # the group's creation is not what is measured here
    message = send(user, group.conversation, "to everyone")
    fake_fcm.delay = 0.3

    first = start_worker(fake_fcm, tmp_path, "worker-1")
    try:
        wait_until(lambda: fake_fcm.received, 60, "the first worker's first push")
        first.kill()  # SIGKILL: no cleanup of any kind
        first.wait(timeout=10)
    finally:
        stop(first)
    assert EventOutbox.objects.filter(attempts=1).exists(), "the worker finished its batch before it was killed"

    EventOutbox.objects.update(not_before=timezone.now())  # the dead worker's lease has passed
    second = start_worker(fake_fcm, tmp_path, "worker-2")
    try:
        wait_until(lambda: not EventOutbox.objects.exists(), 60, "the second worker to empty the outbox")
    finally:
        stop(second)

    pushes = {}
    for push in fake_fcm.received:
        pushes.setdefault(push["token"], []).append(push)
    assert set(pushes) == {f"token-{member.pk}" for member in members}  # every device, at least once
    assert any(len(copies) > 1 for copies in pushes.values())  # the killed batch was resent
    for copies in pushes.values():
        shapes = {
            (p["android"]["collapse_key"], p["data"]["event_id"], p["data"]["message_id"], p["data"]["type"])
            for p in copies
        }
        assert shapes == {(f"c{group.conversation.pk}", copies[0]["data"]["event_id"], f"m{message.pk}", "new_message")}
