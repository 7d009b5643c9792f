"""Model instances from plain SQL, for the statements a kind of request runs every time (the
token's user, the reader's membership, the rows of pages): the columns are listed once per
process, and a row becomes an instance with the fields' converters applied, without a query
built per call or a raw query's per-call mapping of columns to fields."""

import functools

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.base import ModelState


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
    return stored(model, **dict(zip(names, values, strict=True)))


def stored(model, /, **values):
    """The instance of a stored row from its values by attname; the fields left out are deferred
    (loaded on access, as Model.from_db leaves them). Made as unpickling makes one, without
    Model.__init__, which visits every field of the model (half of a conversation list's CPU,
    four instances a row) and sends pre_init and post_init: the models made here have no
    receivers of those (tests/test_rows.py)."""
    made = model.__new__(model)
    made.__dict__.update(values)
    made._state = ModelState()
    made._state.adding, made._state.db = False, DEFAULT_DB_ALIAS
    return made
