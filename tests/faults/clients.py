"""Clients of the fault tests, written as the app is told to behave (docs/protocol.md),
and the one invariant every fault test asserts:

    what each recipient ends up with (live frames plus `since=` catch-up, de-duplicated by id)
    equals exactly what was committed, in order, with one message per temp_id.

"What was committed" is read from the database (and cross-checked against the REST history
paged with `after=`), never taken from what the test meant to send.
"""

import asyncio
import json
import random
import socket
import struct
import time
from collections import Counter

import httpx
import orjson
import websockets
from asgiref.sync import sync_to_async
from django.db import connection

from chat.models import Conversation, Membership, Message
from realtime.models import EventPayload, EventStream, UserEvent

# A close with one of these codes means the client must do something else than resume.
FATAL_CLOSE_CODES = {4400, 4401, 4403, 4410}


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def http_client(timeout=10):
    return httpx.AsyncClient(timeout=timeout, trust_env=False)


class Receiver:
    """One device of a user. It remembers the id of the last event it processed; after any
    disconnect it reconnects with `since=<that id>` to a server picked from `urls` (the same or
    another process), and collects the `new_message` frames in the order it processed them."""

    def __init__(self, name, token, urls, *, since=0, seed=0):
        self.name = name
        self.token = token
        self.urls = list(urls)
        self.rng = random.Random(f"{seed}:{name}")
        self.last_id = int(since)
        self.messages = []  # data of new_message frames, in processing order
        self.others = []  # the other change events, (type, data), in processing order
        self.types = Counter()
        self.duplicates = []  # event ids received again after they were processed
        self.gaps = []  # (last processed id, id received) where ids jumped
        self.connections = 0  # successful handshakes
        self.switches = 0  # reconnections to another process than the previous connection's
        self._previous_url = None
        self.connect_failures = Counter()  # exception name -> count
        self.close_codes = Counter()  # close code (None: no close frame) -> count
        self.fatal = []
        self.cuts = 0
        self.socket = None
        self.task = None
        self._stopping = False
        self._resume_at = 0.0

    def start(self):
        """Connects (again: with since= the id of the last event processed) and keeps connected."""
        self._stopping = False
        self._resume_at = 0.0
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"receiver-{self.name}")
        return self

    async def pause(self, seconds):
        """Disconnects cleanly and comes back after `seconds`, as an app sent to the background."""
        self._resume_at = time.monotonic() + seconds
        ws = self.socket
        if ws is not None:
            await ws.close()

    @property
    def connected(self):
        return self.socket is not None

    async def _run(self):
        while not self._stopping:
            url = self.rng.choice(self.urls)
            try:
                async with websockets.connect(
                    f"{url}?token={self.token}&since={self.last_id}",
                    open_timeout=10,
                    close_timeout=2,
                    max_size=None,
                    compression=None,
                    proxy=None,
                ) as ws:
                    self.socket = ws
                    self.connections += 1
                    if self._stopping:  # stop() came while this connection was opening
                        await ws.close()
                    self.switches += self._previous_url not in (None, url)
                    self._previous_url = url
                    try:
                        async for raw in ws:
                            self._process(orjson.loads(raw))
                    finally:
                        self.socket = None
                    code = ws.close_code
                    self.close_codes[code] += 1
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                self.close_codes[code] += 1
            except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidStatus) as exc:
                self.connect_failures[type(exc).__name__] += 1
                code = None
            if code in FATAL_CLOSE_CODES:
                self.fatal.append(code)
                return
            if not self._stopping:
                await asyncio.sleep(max(self.rng.uniform(0.05, 0.25), self._resume_at - time.monotonic()))

    def _process(self, frame):
        if "id" not in frame:
            return  # pong, error, relayed ice_candidate: ephemeral
        event_id = int(frame["id"])
        if event_id <= self.last_id:
            self.duplicates.append(event_id)
            return
        if event_id != self.last_id + 1:
            self.gaps.append((self.last_id, event_id))
        self.last_id = event_id
        self.types[frame["type"]] += 1
        if frame["type"] == "new_message":
            self.messages.append(frame["data"])
        else:
            self.others.append((frame["type"], frame["data"]))

    def cut(self):
        """Aborts the TCP connection at once (a reset: no WebSocket close handshake)."""
        ws = self.socket
        if ws is None:
            return False
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
        self.socket = None  # gone, whenever the reading task notices
        self.cuts += 1
        return True

    async def stop(self):
        self._stopping = True
        ws = self.socket
        if ws is not None:
            await ws.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 15)
            except TimeoutError:
                self.task.cancel()
                raise AssertionError(f"receiver {self.name} did not stop") from None

    def message_ids(self, conversation_id):
        """The ids of the conversation's messages this device processed, de-duplicated, in order."""
        seen, ids = set(), []
        for data in self.messages:
            if data["conversation_id"] == conversation_id and data["message_id"] not in seen:
                seen.add(data["message_id"])
                ids.append(data["message_id"])
        return ids

    def summary(self):
        return (
            f"{self.name}: {len(self.messages)} messages, last id {self.last_id}, {self.connections} connections "
            f"({self.switches} to another process), {self.cuts} cuts, closes {dict(self.close_codes)}, "
            f"connect failures {dict(self.connect_failures)}"
        )


class Sender:
    """A user posting messages. A POST that fails (connection error, timeout, 503) is retried with
    the same temp_id, on the next server of `bases` (possibly another process), until it gets a 201
    or (a retry of a send that was stored after all) a 200 with the original message."""

    def __init__(self, name, token, bases, *, seed=0, attempt_timeout=10, give_up_after=60):
        self.name = name
        self.token = token
        self.bases = list(bases)
        self.rng = random.Random(f"{seed}:{name}")
        self.attempt_timeout = attempt_timeout
        self.give_up_after = give_up_after
        self.client = http_client(attempt_timeout)
        self.stored = {}  # temp_id -> the message the server answered with
        self.statuses = Counter()  # final status per send (201 new, 200 stored by an earlier attempt)
        self.failures = Counter()  # failed attempts: status code or exception name -> count
        self.failure_log = []  # (monotonic time, temp_id, outcome)
        self.problems = []  # answers that break the contract (not the envelope, 500, 4xx)
        self.sends = 0
        self.latencies = []  # seconds from the first attempt to the stored answer, per send

    async def send(self, conversation_id, content, temp_id, first=None):
        index = self.rng.randrange(len(self.bases)) if first is None else first
        started = time.monotonic()
        give_up = started + self.give_up_after
        delay = 0.05
        self.sends += 1
        while True:
            base = self.bases[index % len(self.bases)]
            try:
                response = await self.client.post(
                    f"{base}/v1/conversations/{conversation_id}/messages",
                    json={"content": content, "type": "text", "temp_id": temp_id},
                    headers=auth(self.token),
                )
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                outcome = response.status_code
                if outcome in (200, 201):
                    body = response.json()
                    self.stored[temp_id] = body
                    self.statuses[outcome] += 1
                    self.latencies.append(time.monotonic() - started)
                    return body
                problem = envelope_problem(response)
                if problem or outcome != 503:
                    self.problems.append((temp_id, outcome, problem or response.text[:200]))
                    if outcome != 503:
                        return None
            self.failures[outcome] += 1
            self.failure_log.append((time.monotonic(), temp_id, outcome))
            if time.monotonic() > give_up:
                self.problems.append((temp_id, "gave up", outcome))
                return None
            index += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def aclose(self):
        await self.client.aclose()


def envelope_problem(response):
    """Why an error response is not the contract's JSON envelope (None when it is)."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        body = response.json()
    except json.JSONDecodeError:
        return "body is not JSON"
    if not isinstance(body, dict) or body.get("code") != response.status_code:
        return f"code {body.get('code') if isinstance(body, dict) else body!r} != {response.status_code}"
    if not isinstance(body.get("message"), str) or not isinstance(body.get("details"), str):
        return "message or details missing"
    return None


# --- Setup through the API ---------------------------------------------------------------------


async def open_group(base, owner, members, name="Faults"):
    """A group conversation of owner and members (register() answers); returns its id."""
    async with http_client() as client:
        response = await client.post(
            f"{base}/v1/conversations",
            json={"type": "group", "name": name, "members": [m["user_id"] for m in members]},
            headers=auth(owner["token"]),
        )
    assert response.status_code == 201, response.text
    return response.json()["conversation_id"]


async def open_private(base, user, other):
    async with http_client() as client:
        response = await client.post(
            f"{base}/v1/conversations",
            json={"type": "private", "target_id": other["user_id"]},
            headers=auth(user["token"]),
        )
    assert response.status_code in (200, 201), response.text
    return response.json()["conversation_id"]


async def history_after(base, token, conversation_id, page=37):
    """Every message id of the conversation, oldest first, as a client catching up over REST
    sees it: back to the first message with before=, then forward from it with after=."""
    url = f"{base}/v1/conversations/{conversation_id}/messages"
    async with http_client() as client:

        async def get(**params):
            response = await client.get(url, params={"limit": page, **params}, headers=auth(token))
            assert response.status_code == 200, response.text
            body = response.json()
            return [m["message_id"] for m in body["messages"]], body["has_more"]

        newest_first, has_more = await get()
        while has_more:
            older, has_more = await get(before=newest_first[-1])
            newest_first += older
        if not newest_first:
            return []
        ids = [newest_first[-1]]
        has_more = True
        while has_more:
            newer, has_more = await get(after=ids[-1])
            ids += reversed(newer)
        return ids


# --- What the database holds -------------------------------------------------------------------


async def db(function, *args, **kwargs):
    """Runs an ORM function in a worker thread (with a connection of its own, closed after)."""

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return await sync_to_async(run, thread_sensitive=False)()


def _pk(prefixed):
    return int(prefixed.lstrip("cm"))


def committed_messages(conversation_id):
    """[(message id, temp_id, sender id)] of the conversation's stored messages, in order."""
    rows = Message.objects.filter(conversation_id=_pk(conversation_id)).order_by("seq")
    return [(f"m{pk}", temp_id, str(sender)) for pk, temp_id, sender in rows.values_list("pk", "temp_id", "sender_id")]


def log_consistency_problems(conversation_id):
    """Everything that would show a half-written send: seqs with holes, a conversation whose
    last_seq disagrees, a message without exactly one new_message event for every member, a
    user's event ids with holes, an event whose message was never stored."""
    problems = []
    pk = _pk(conversation_id)
    conversation = Conversation.objects.get(pk=pk)
    seqs = list(Message.objects.filter(conversation_id=pk).order_by("seq").values_list("seq", flat=True))
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"message seqs are not 1..{len(seqs)}")
    if conversation.last_seq != len(seqs):
        problems.append(f"last_seq {conversation.last_seq} != {len(seqs)} messages")
    members = set(Membership.objects.filter(conversation_id=pk).values_list("user_id", flat=True))
    message_ids = {f"m{m}" for m in Message.objects.filter(conversation_id=pk).values_list("pk", flat=True)}
    payloads = {}
    for payload_id, data in EventPayload.objects.filter(type="new_message").values_list("pk", "data"):
        data = orjson.loads(data)
        if data["conversation_id"] == conversation_id:
            payloads[payload_id] = data["message_id"]
    events_per_message = Counter(payloads.values())
    for message_id in message_ids:
        if events_per_message[message_id] != 1:
            problems.append(f"{message_id} has {events_per_message[message_id]} new_message events")
    for message_id in set(events_per_message) - message_ids:
        problems.append(f"an event for {message_id}, which is not stored")
    recipients = {}
    for user_id, payload_id in UserEvent.objects.filter(payload_id__in=payloads).values_list("user_id", "payload_id"):
        recipients.setdefault(payload_id, set()).add(user_id)
    for payload_id, message_id in payloads.items():
        if recipients.get(payload_id, set()) != members:
            problems.append(f"{message_id} was recorded for {sorted(recipients.get(payload_id, ()))}")
    for user_id in members:
        seqs = list(UserEvent.objects.filter(user_id=user_id).order_by("seq").values_list("seq", flat=True))
        last = EventStream.objects.filter(user_id=user_id).values_list("last_id", flat=True).first() or 0
        if seqs != list(range(1, last + 1)):
            problems.append(f"user {user_id}'s event ids are not 1..{last}")
    return problems


def duplicate_temp_ids(conversation_id):
    rows = Message.objects.filter(conversation_id=_pk(conversation_id), temp_id__isnull=False)
    counts = Counter(rows.values_list("sender_id", "temp_id"))
    return {key: count for key, count in counts.items() if count > 1}


# --- The invariant -----------------------------------------------------------------------------


async def wait_delivered(receivers, conversation_ids, timeout):
    """Waits (up to timeout) until every receiver has processed every committed message of the
    conversations it is in; returns {conversation: committed message ids} for the check."""
    committed = {cid: [m[0] for m in await db(committed_messages, cid)] for cid in conversation_ids}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            set(receiver.message_ids(cid)) >= set(ids)
            for receiver, cids in receivers.items()
            for cid, ids in committed.items()
            if cid in cids
        ):
            break
        await asyncio.sleep(0.1)
    return committed


async def assert_delivery_invariant(receivers, conversation_ids, *, temp_ids=(), timeout=60, base=None, token=None):
    """The invariant of every fault test.

    receivers: {Receiver: conversation ids it is a member of}. Waits until delivery settles,
    then for every receiver and conversation: the messages it processed (de-duplicated by id),
    in the order it processed them, are exactly the committed messages in commit order; a
    receiver never got an event id twice nor skipped one; every temp_id the senders used is stored
    exactly once. With base and token, the committed list is also checked against the REST
    history paged with after=.
    """
    committed = await wait_delivered(receivers, conversation_ids, timeout)
    report = []
    for receiver, cids in receivers.items():
        print(receiver.summary())
        for cid in cids:
            got, want = receiver.message_ids(cid), committed[cid]
            if got != want:
                missing = [m for m in want if m not in set(got)]
                extra = [m for m in got if m not in set(want)]
                report.append(
                    f"{receiver.name} in {cid}: {len(got)} processed, {len(want)} committed; "
                    f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, not committed {extra[:10]}, "
                    f"in order: {[m for m in got if m in set(want)] == [m for m in want if m in set(got)]}"
                )
        if receiver.duplicates:
            report.append(f"{receiver.name} received event ids again: {receiver.duplicates[:10]}")
        if receiver.gaps:
            report.append(f"{receiver.name} saw event ids jump: {receiver.gaps[:10]}")
        if receiver.fatal:
            report.append(f"{receiver.name} was closed with {receiver.fatal}")
    for cid in conversation_ids:
        duplicates = await db(duplicate_temp_ids, cid)
        if duplicates:
            report.append(f"{cid}: temp_ids stored more than once: {duplicates}")
    if temp_ids:
        stored = Counter()
        for cid in conversation_ids:
            stored.update(temp_id for _, temp_id, _ in await db(committed_messages, cid) if temp_id)
        not_once = {t: stored[t] for t in temp_ids if stored[t] != 1}
        if not_once:
            report.append(f"{len(not_once)} temp_ids not stored exactly once: {list(not_once.items())[:10]}")
    if base is not None:
        for cid in conversation_ids:
            paged = await history_after(base, token, cid)
            if paged != committed[cid]:
                report.append(f"{cid}: REST history paged with after= disagrees with the database")
    assert not report, "delivery invariant broken:\n" + "\n".join(report)
    return committed
