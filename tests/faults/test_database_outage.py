"""PostgreSQL disappears for a couple of seconds (every connection reset, new ones refused) and
comes back. Requests in the outage fail with 503 in the error envelope, never a 500 or an HTML
page; nothing is half written; the service resumes by itself shortly after the database is back."""

import asyncio
import time
from collections import Counter

import httpx

from tests import servers
from tests.faults.clients import (
    Receiver,
    Sender,
    assert_delivery_invariant,
    auth,
    db,
    envelope_problem,
    log_consistency_problems,
    open_group,
)
from tests.faults.infra import TcpProxy, async_wait_for, fault_marks
from tests.servers import database_address, register

pytestmark = fault_marks()

BEFORE, OUTAGE, AFTER = 2.0, 2.5, 6.0
# After the database is back, requests may fail only within this many seconds: psycopg_pool
# retries connecting with a backoff of 1, 2, 4... s, so its next attempt may come a few
# seconds after the database is back (measured: the first success 0.3-0.7 s after it).
RECOVERY_BOUND = 5.0


async def test_database_outage(start_servers, seed):
    proxy = TcpProxy(*database_address())
    try:
        # A pool timeout below the outage's length, so that requests in it fail (503) instead of
        # waiting it out (with the default of 10 s they are held and then served).
        a, b = start_servers(
            2, DATABASE_URL=servers.test_database_url("127.0.0.1", proxy.port), DATABASE_POOL_TIMEOUT="1"
        )
        await run_outage(proxy, a, b, seed)
    finally:
        proxy.close()


async def run_outage(proxy, a, b, seed):
    alice, bob, carol = (register(a.base, name) for name in ("alice", "bob", "carol"))
    conversation = await open_group(a.base, alice, [bob, carol])
    receivers = [
        Receiver("bob", bob["token"], [a.ws, b.ws], seed=seed),
        Receiver("carol", carol["token"], [a.ws, b.ws], seed=seed),
        Receiver("alice-phone", alice["token"], [a.ws, b.ws], seed=seed),
    ]
    for receiver in receivers:
        receiver.start()
    await async_wait_for(lambda: all(r.connected for r in receivers), 20, message="receivers connected")

    senders = [
        Sender(u["username"], u["token"], [a.base, b.base], seed=seed, attempt_timeout=20) for u in (alice, carol)
    ]
    probe_log = []  # (monotonic time, server, status or exception name, envelope problem)
    timeline = {"start": time.monotonic()}
    timeline["cut"] = timeline["start"] + BEFORE
    timeline["restore"] = timeline["cut"] + OUTAGE
    timeline["end"] = timeline["restore"] + AFTER

    async def send_until_end(sender):
        n = 0
        while time.monotonic() < timeline["end"]:
            await sender.send(conversation, f"{sender.name} #{n}", f"{sender.name}-{n}")
            n += 1
            await asyncio.sleep(0.05)

    async def probe():
        """Reads the conversation every 50 ms from alternate processes, as an app polling would."""
        async with httpx.AsyncClient(timeout=20, trust_env=False) as client:
            n = 0
            while time.monotonic() < timeline["end"]:
                server = (a, b)[n % 2]
                n += 1
                started = time.monotonic()
                try:
                    response = await client.get(
                        f"{server.base}/v1/conversations/{conversation}", headers=auth(bob["token"])
                    )
                except httpx.HTTPError as exc:
                    probe_log.append(
                        (started, server.port, type(exc).__name__, "no answer", time.monotonic() - started)
                    )
                else:
                    problem = envelope_problem(response) if response.status_code != 200 else None
                    probe_log.append((started, server.port, response.status_code, problem, time.monotonic() - started))
                await asyncio.sleep(0.05)

    async def outage():
        await asyncio.sleep(timeline["cut"] - time.monotonic())
        proxy.cut()
        await asyncio.sleep(timeline["restore"] - time.monotonic())
        proxy.restore()

    try:
        await asyncio.wait_for(asyncio.gather(outage(), probe(), *(send_until_end(s) for s in senders)), 120)
        temp_ids = [temp_id for s in senders for temp_id in s.stored]
        await assert_delivery_invariant(
            {r: [conversation] for r in receivers}, [conversation], temp_ids=temp_ids, base=a.base, token=bob["token"]
        )
        problems = await db(log_consistency_problems, conversation)
    finally:
        for receiver in receivers:
            await receiver.stop()
        for sender in senders:
            await sender.aclose()

    during = [entry for entry in probe_log if timeline["cut"] <= entry[0] < timeline["restore"]]
    after = [entry for entry in probe_log if entry[0] >= timeline["restore"]]
    failed_after = [entry for entry in after if entry[2] != 200]
    first_success = next((entry[0] for entry in after if entry[2] == 200), None)
    send_failures = [entry for s in senders for entry in s.failure_log]
    print(
        f"probe: {len(during)} requests during the {OUTAGE}s outage, statuses "
        f"{sorted({str(e[2]) for e in during})}; after restore {len(failed_after)} of {len(after)} failed, "
        f"the last {max((e[0] for e in failed_after), default=timeline['restore']) - timeline['restore']:.2f}s "
        f"after it; first success {first_success - timeline['restore'] if first_success else None:.2f}s after it"
    )
    print(
        f"sends: {sum(len(s.stored) for s in senders)} stored, failed attempts "
        f"{dict(sum((s.failures for s in senders), Counter()))}, "
        f"{sum(1 for e in send_failures if e[0] >= timeline['restore'])} of them after restore; "
        f"answered 200 on retry {sum(s.statuses[200] for s in senders)}; connections per socket "
        f"{[r.connections for r in receivers]}"
    )
    print(f"slowest probe answer during the outage {max((e[4] for e in during), default=0):.2f}s")

    assert not problems, problems
    bad = [entry for entry in probe_log if entry[3]]
    assert not bad, f"answers that are not 200 or a 503 envelope: {bad[:10]}"
    for sender in senders:
        assert not sender.problems, sender.problems
    assert any(entry[2] == 503 for entry in during), "the outage never showed"
    late = [entry for entry in failed_after if entry[0] > timeline["restore"] + RECOVERY_BOUND]
    assert not late, f"{len(late)} requests failed later than {RECOVERY_BOUND}s after the database came back"


async def test_broken_pooled_connections_after_a_quiet_outage(start_servers):
    """The outage happens while (almost) nobody asks anything, so the connections idle in the
    pool are still there, broken, when the database comes back: none may fail a request then."""
    proxy = TcpProxy(*database_address())
    try:
        (server,) = start_servers(
            1, DATABASE_URL=servers.test_database_url("127.0.0.1", proxy.port), DATABASE_POOL_TIMEOUT="1"
        )
        alice = register(server.base, "alice")
        async with httpx.AsyncClient(timeout=20, trust_env=False) as client:

            async def get():
                started = time.monotonic()
                try:
                    response = await client.get(f"{server.base}/v1/conversations", headers=auth(alice["token"]))
                except httpx.HTTPError as exc:
                    return started, type(exc).__name__, "no answer", time.monotonic() - started
                problem = envelope_problem(response) if response.status_code != 200 else None
                return started, response.status_code, problem, time.monotonic() - started

            # Concurrent requests make the pool open several connections.
            for _ in range(5):
                assert {r[1] for r in await asyncio.gather(*(get() for _ in range(8)))} == {200}
            pooled = proxy.connections
            assert pooled >= 4, "the pool did not grow; nothing to break"
            proxy.cut()
            await asyncio.sleep(0.5)
            during = [await get() for _ in range(3)]
            await asyncio.sleep(1.0)
            proxy.restore()
            restored = time.monotonic()
            after = []
            while time.monotonic() < restored + 4:
                after.append(await get())
    finally:
        proxy.close()

    failed_after = [(round(t - restored, 2), status, round(took, 3)) for t, status, _, took in after if status != 200]
    print(f"{pooled} connections pooled before the outage; during it: {[(s, round(d, 3)) for _, s, _, d in during]}")
    print(f"after restore: {len(failed_after)} of {len(after)} requests failed: {failed_after}")
    assert all(status == 503 and problem is None for _, status, problem, _ in during), during
    # A 503 answered at once (not after waiting out the pool timeout) is a broken pooled connection.
    broken = [entry for entry in failed_after if entry[2] < 0.5]
    assert not broken, f"requests failed on broken pooled connections after the database came back: {broken}"
    assert not [entry for entry in failed_after if entry[0] > RECOVERY_BOUND], failed_after
    assert all(problem is None for _, _, problem, _ in after)
