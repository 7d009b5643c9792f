"""The pool's check of a connection it hands out (imserver.postgresql): no round trip for a quiet
connection, and a connection the server has closed is refused. The recovery it buys end to end
is tests/faults/test_database_outage.py's."""

import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from imserver.postgresql.base import check_connection
from tests import servers
from tests.conftest import is_postgres

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not is_postgres(), reason="the pool is PostgreSQL's"),
]


@pytest.fixture
def pooled():
    """A connection as the pool holds one (autocommit off, idle), and an observer beside it."""
    with (
        psycopg.connect(servers.test_database_url()) as conn,
        psycopg.connect(servers.test_database_url(), autocommit=True) as observer,
    ):
        conn.execute("SELECT 1")
        conn.rollback()
        yield conn, observer


def last_activity(observer, pid):
    """When the backend last started or finished a statement, as PostgreSQL reports it."""
    observer.execute("SELECT pg_stat_clear_snapshot()")
    return observer.execute("SELECT state_change FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]


def test_the_pool_uses_this_check():
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    assert connection.pool._check is check_connection


@pytest.mark.parametrize(
    "check, round_trip", [(check_connection, False), (ConnectionPool.check_connection, True)], ids=["ours", "psycopg"]
)
def test_a_quiet_connection_is_checked_without_a_round_trip(pooled, check, round_trip):
    conn, observer = pooled
    before = last_activity(observer, conn.info.backend_pid)
    time.sleep(0.01)
    check(conn)
    assert (last_activity(observer, conn.info.backend_pid) != before) is round_trip
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_connection_the_server_ended_fails_the_check(pooled):
    conn, observer = pooled
    observer.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
    deadline = time.monotonic() + 5
    with pytest.raises(psycopg.OperationalError):
        while time.monotonic() < deadline:  # the server's FATAL message arrives shortly after
            check_connection(conn)
            time.sleep(0.01)


def test_a_closed_connection_fails_the_check(pooled):
    conn, _ = pooled
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        check_connection(conn)
