from channels.db import DatabaseSyncToAsync
from django.db import connection


def in_db_thread(func):
    """Runs blocking database work off the event loop. On PostgreSQL in any worker thread, so
    that sockets do not queue behind each other on the one thread thread-sensitive calls share;
    SQLite serializes writers anyway and wants its connections kept to one thread."""
    return DatabaseSyncToAsync(func, thread_sensitive=connection.vendor == "sqlite")
