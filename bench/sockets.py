"""Idle sockets and a connect storm against one server process.

Idle: N authenticated WebSockets held open; the server's RSS per connection. Storm: M sockets
opened at once; the time until every one is accepted and live (a ping answered), and failures.

    .venv/bin/python bench/sockets.py --deployment daphne --idle 10000 --storm 2000
    .venv/bin/python bench/sockets.py --deployment production --idle 10000 --storm 2000

The production deployment holds its sockets in uvicorn (no gunicorn is started here).
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import CpuMeter, Deployment, add_deployment_argument
from bench.report import report
from bench.seed import analyze, create_database, django_setup, seed_users


async def open_live(url):
    """A socket the server has accepted, authenticated and made live (it answered a ping frame)."""
    socket = await websockets.connect(url, open_timeout=60, ping_interval=None, max_queue=4)
    await socket.send('{"type":"ping","data":{"timestamp":1}}')
    while b'"pong"' not in (await socket.recv(decode=False)):
        pass
    return socket


async def hold_idle(port, tokens, batch=250, close=False):
    sockets, failures = [], 0
    for start in range(0, len(tokens), batch):
        results = await asyncio.gather(
            *[open_live(f"ws://127.0.0.1:{port}/ws?token={t}") for t in tokens[start : start + batch]],
            return_exceptions=True,
        )
        sockets.extend(r for r in results if not isinstance(r, BaseException))
        failures += sum(isinstance(r, BaseException) for r in results)
    if close:
        await asyncio.gather(*[s.close() for s in sockets], return_exceptions=True)
    return sockets, failures


async def storm(port, tokens):
    started = time.monotonic()
    results = await asyncio.gather(
        *[open_live(f"ws://127.0.0.1:{port}/ws?token={t}") for t in tokens], return_exceptions=True
    )
    elapsed = time.monotonic() - started
    sockets = [r for r in results if not isinstance(r, BaseException)]
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    await asyncio.gather(*[s.close() for s in sockets], return_exceptions=True)
    return elapsed, len(sockets), errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_deployment_argument(parser)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--storm", type=int, default=2000)
    args = parser.parse_args(argv)

    create_database()
    django_setup()

    tokens = [token for _, token in seed_users(max(args.idle, args.storm), "sock", refresh=False)]
    analyze()
    command = (
        f".venv/bin/python bench/sockets.py --deployment {args.deployment} --idle {args.idle} --storm {args.storm}"
    )
    # Each part on a fresh server, warmed up by a few sockets: memory a storm allocated stays with
    # the process, so counting idle sockets after it would undercount them.
    with Deployment(args.deployment, rest=False) as deployment:

        async def storm_part():
            await hold_idle(deployment.ws_port, tokens[:20], close=True)  # warm up
            await asyncio.sleep(1)
            meter = CpuMeter(deployment.servers)
            meter.start()
            result = await storm(deployment.ws_port, tokens[: args.storm])
            meter.stop()
            return (*result, meter.used)

        storm_time, storm_ok, storm_errors, (storm_cpu, storm_pg_cpu, storm_own_cpu) = asyncio.run(storm_part())
    with Deployment(args.deployment, rest=False) as deployment:

        async def idle_part():
            await hold_idle(deployment.ws_port, tokens[:100], close=True)  # warm up
            await asyncio.sleep(2)
            baseline = deployment.rss_bytes()
            sockets, failures = await hold_idle(deployment.ws_port, tokens[: args.idle])
            await asyncio.sleep(3)
            held = deployment.rss_bytes()
            fds = deployment.open_fds()
            await asyncio.gather(*[s.close() for s in sockets], return_exceptions=True)
            return baseline, held, len(sockets), failures, fds

        baseline, held, idle_ok, idle_failures, fds = asyncio.run(idle_part())
    report(
        f"connect storm: {args.storm} sockets at once, {args.deployment}",
        {
            "seconds until all live": storm_time,
            "connected": storm_ok,
            "failures": len(storm_errors),
            "server CPU s": storm_cpu,
            "PostgreSQL CPU s": storm_pg_cpu,
            "load generator CPU s": storm_own_cpu,
        },
        command,
    )
    if storm_errors:
        print("  first failures:", storm_errors[:3])
    report(
        f"idle sockets: {args.idle} in one process, {args.deployment}",
        {
            "connected": idle_ok,
            "failures": idle_failures,
            "server RSS before MB": baseline / 2**20,
            "server RSS with sockets MB": held / 2**20,
            "KB per socket": (held - baseline) / max(idle_ok, 1) / 1024,
            "server open fds": fds,
        },
        command,
    )
    return 0 if not storm_errors and not idle_failures else 1


if __name__ == "__main__":
    sys.exit(main())
