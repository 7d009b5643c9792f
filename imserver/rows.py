"""Model instances from plain SQL, for the statements a kind of request runs every time (the
token's user, the reader's membership): the columns are listed once per process, and a row
becomes an instance the way the ORM makes one (from_db and the fields' converters), without a
query built per call or a raw query's per-call mapping of columns to fields."""

import functools

from django.db import connection


@functools.cache
def _plan(model, alias, vendor):
    fields = model._meta.concrete_fields
    columns = ", ".join(f"{alias}.{connection.ops.quote_name(field.column)}" for field in fields)
    converters = []
    for index, field in enumerate(fields):
        field_converters = connection.ops.get_db_converters(field.cached_col) + field.get_db_converters(connection)
        if field_converters:
            converters.append((index, field.cached_col, field_converters))
    return columns, [field.attname for field in fields], converters


def columns(model, alias: str) -> str:
    """The model's columns, of the table named `alias` in the statement, for a SELECT list;
    instance() reads a row that starts with them."""
    return _plan(model, alias, connection.vendor)[0]


def instance(model, alias: str, row):
    """The model instance whose columns (columns(model, alias)) start the row."""
    _, names, converters = _plan(model, alias, connection.vendor)
    values = list(row[: len(names)])
    for index, expression, field_converters in converters:
        for converter in field_converters:
            values[index] = converter(values[index], expression, connection)
    return model.from_db(connection.alias, names, values)
