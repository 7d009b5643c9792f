"""Fixtures of the fault tests: a private Redis per test, server processes on it, a seed."""

import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults.infra import RedisServer
from tests.servers import Server


@pytest.fixture
def seed():
    """The seed of the test's random choices (FAULT_SEED=<n> replays a run)."""
    value = int(os.environ.get("FAULT_SEED") or random.randrange(1_000_000))
    print(f"FAULT_SEED={value}")
    return value


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def start_servers(tmp_path, redis_server):
    """start_servers(n, kind="daphne", args=(), **env) -> n server processes started in parallel,
    on the test database and the test's private Redis, with a 1 s presence heartbeat."""
    started = []

    def start(n=1, kind="daphne", args=(), **env):
        env = {
            "REDIS_URL": redis_server.url,
            "PRESENCE_HEARTBEAT_SECONDS": "1",
            "PRESENCE_TTL_SECONDS": "3",
            **env,
        }
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(Server, tmp_path, args=args, kind=kind, **env) for _ in range(n)]
        servers, errors = [], []
        for future in futures:
            try:
                servers.append(future.result())
            except Exception as exc:
                errors.append(exc)
        started.extend(servers)
        if errors:
            raise errors[0]
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _quiet_http_log(caplog):
    """One INFO line per request drowns what the tests print."""
    caplog.set_level(logging.WARNING, logger="httpx")
