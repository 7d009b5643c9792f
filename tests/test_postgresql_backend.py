"""imserver.postgresql: the pool's check of a connection it hands out (no round trip for a quiet
connection, and a connection the server has closed is refused; the recovery it buys end to end
is tests/faults/test_database_outage.py's), and timestamps loaded by psycopg's own loader."""

import datetime
import time

import psycopg
import pytest
from django.db import connection
from psycopg.postgres import types
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

from imserver.postgresql.base import TIMESTAMPTZ_OID, check_connection
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


def loaded(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_timestamps_load_through_psycopgs_own_loader_as_utc():
    from imserver.postgresql.base import UTCTimestamptzLoader

    connection.ensure_connection()
    assert connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is UTCTimestamptzLoader
    value = loaded("SELECT '2024-01-02 03:04:05.123456+05'::timestamptz")
    assert value == datetime.datetime(2024, 1, 1, 22, 4, 5, 123456, tzinfo=datetime.UTC)
    assert value.tzinfo is datetime.UTC  # what Django's own loader gives, not a ZoneInfo
    assert loaded("SELECT NULL::timestamptz") is None


def test_a_session_moved_off_utc_loads_as_djangos_loader_does():
    """Nothing moves it, but if something did, the values are Django's (its tzinfo replaced in)."""
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Shanghai'")
    try:
        value = loaded("SELECT '2024-01-02 03:04:05+00'::timestamptz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert value == datetime.datetime(2024, 1, 2, 11, 4, 5, tzinfo=datetime.UTC)


def test_json_loads_through_orjson_and_jsonb_stays_text_for_djangos_json_field():
    from imserver.postgresql.base import JsonLoader

    connection.ensure_connection()
    assert connection.connection.adapters.get_loader(types["json"].oid, Format.TEXT) is JsonLoader
    assert loaded("SELECT json_build_array(1, 'é', true, NULL, 9007199254740993, 1.5)") == [
        1, "é", True, None, 9007199254740993, 1.5,
    ]  # fmt: skip
    assert loaded("""SELECT '{"a": [1]}'::jsonb""") == '{"a": [1]}'
