"""Rate limits are counted in Redis, so every server process agrees on them (contract 1.2)."""

import httpx

from tests.servers import Server, cluster_marks, register

pytestmark = cluster_marks("processes share counters only through Redis")


def test_limits_are_shared_by_every_process(tmp_path):
    limits = {"RATE_LIMITS": "on", "RATE_LIMIT_SEARCH": "4/minute"}
    a, b = Server(tmp_path, **limits), Server(tmp_path, **limits)
    try:
        token = register(a.base, "alice")["token"]
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            httpx.get(f"{server.base}/v1/users/search", params={"query": "a"}, headers=headers, timeout=10).status_code
            for server in (a, b, a, b, b)
        ]
        assert statuses == [200, 200, 200, 200, 429]
    finally:
        a.stop()
        b.stop()
