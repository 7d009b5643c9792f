"""Django's PostgreSQL backend, with a cheaper check of each connection the pool hands out and
cheaper loaders of the values a page of messages brings (timestamps, json)."""

import datetime
import functools
import select

import orjson
import psycopg
from django.db.backends.postgresql import base
from psycopg.adapt import AdaptersMap, Loader
from psycopg.postgres import types
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

TIMESTAMPTZ_OID = types["timestamptz"].oid
# psycopg's own text loader: the C one where psycopg[binary] is installed.
PSYCOPG_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


def check_connection(conn: psycopg.Connection) -> None:
    """Raises unless the pooled connection still works, with a round trip only when needed.

    A connection idle in the pool has nothing to read. A database restart, a failover or a
    proxy's reset makes its socket readable (the server's FATAL message, end of file or a reset)
    and then psycopg_pool's own check, an empty query, finds it broken; a quiet connection is
    handed out without that round trip (0.8% of a REST send's instructions in Python, and a
    round trip to PostgreSQL before every request).
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the pooled connection is closed")
    poller = select.poll()  # not select.select: a process with sockets has descriptors past 1024
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class UTCTimestamptzLoader(Loader):
    """Django's timestamptz loader for a database in UTC (aware datetimes, `datetime.UTC`),
    parsing with psycopg's C loader. Django's own subclasses the Python loader and so parses
    every value in Python: about 11 us a value, a tenth of a history page's CPU (50 messages,
    docs/performance.md). Where the session is in UTC, as Django sets it, psycopg's loader already
    gives datetime.timezone.utc; elsewhere this does what Django's does (parse, then that tzinfo)."""

    timezone = datetime.UTC  # Django's create_cursor compares it with connection.timezone

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self._parse = PSYCOPG_TIMESTAMPTZ_LOADER(oid, context).load
        if self.connection is not None and self.connection.info.parameter_status("TimeZone") == "UTC":
            self.load = self._parse

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


class JsonLoader(Loader):
    """`json` values (what queries build with json_build_array and json_agg: a message's reply
    preview and reactions) decoded by orjson; psycopg's loader uses the standard library's json,
    a tenth of a history page's CPU. Django's jsonb loader (text for its JSONField) stays."""

    load = staticmethod(orjson.loads)


@functools.cache
def adapters_over(template: AdaptersMap, *, utc: bool) -> AdaptersMap:
    """Django's adapters for a connection with this module's loaders."""
    adapters = AdaptersMap(template)
    adapters.register_loader("json", JsonLoader)
    if utc:
        adapters.register_loader(TIMESTAMPTZ_OID, UTCTimestamptzLoader)
    return adapters


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if "context" in params:  # psycopg 3
            params["context"] = adapters_over(params["context"], utc=self.timezone is datetime.UTC)
        return params

    @property
    def pool(self):
        pool = super().pool
        # With CONN_HEALTH_CHECKS Django gives the pool psycopg_pool's check, and has no
        # option to give it another.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = check_connection
        return pool
