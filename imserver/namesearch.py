"""Search of names (usernames and nicknames, group names) through imserver.textsearch.

A named row carries the tokens of its names in a column of its own, NameSearchField, so the
index changes in the very statement that changes a name, whatever path saves it (a service, the
admin, registration, OAuth, bulk_create; an erasure's new name replaces the old one's tokens):
- PostgreSQL: a `tsvector` under a GIN index (the model's migration), queried as a phrase whose
  last token is a prefix, as message search is;
- SQLite: the tokens between spaces, queried with LIKE for the same phrase (names are few and
  short on the embedded default; a token holds no space).

`queryset.filter(<field>__matches=query)` finds the rows one of whose names contains the query
(docs/search.md). A name is never matched across into the next: a `|` token, which no query has,
stands between them. QuerySet.update() of a name bypasses the field: names_reindex repairs it.
"""

from collections.abc import Iterator

from django.db import migrations, models, transaction
from django.db.models import Lookup

from imserver import textsearch

SEPARATOR = "|"


def document_tokens(names) -> list[str]:
    tokens = []
    for name in names:
        if tokens:
            tokens.append(SEPARATOR)
        tokens.extend(textsearch.name_tokens(name or ""))
    return tokens


class NameSearchField(models.Field):
    """The search tokens of the row's `sources` fields, made again on every insert and on every
    save() whose update_fields name a source (update_fields_with_document). Read back as None:
    nothing reads it but the database."""

    def __init__(self, *args, sources=(), **kwargs):
        self.sources = tuple(sources)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["sources"] = self.sources
        kwargs.pop("editable", None)
        if kwargs.get("default") == "":
            kwargs.pop("default")
        return name, path, args, kwargs

    def db_type(self, connection):
        return "tsvector" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value, expression, connection):
        return None

    def names_of(self, instance) -> list[str]:
        return [getattr(instance, source) for source in self.sources]

    def pre_save(self, model_instance, add):
        names = self.names_of(model_instance)
        setattr(model_instance, self.attname, names)
        return names

    def get_db_prep_value(self, value, connection, prepared=False):
        tokens = document_tokens(value) if isinstance(value, list | tuple) else []
        if connection.vendor == "postgresql":
            return textsearch.tsvector_literal(tokens)
        return f" {' '.join(tokens)} "


@NameSearchField.register_lookup
class NameMatches(Lookup):
    """`<field>__matches=query`: a name of the row contains the query (normalized, by substring
    in every script, punctuation and spaces only separating)."""

    lookup_name = "matches"

    def get_prep_lookup(self):
        return self.rhs

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        tokens = textsearch.name_query_tokens(self.rhs)
        if not tokens:
            return "1 = 0", []
        if connection.vendor == "postgresql":
            return f"{lhs} @@ %s::tsquery", [*params, textsearch.tsquery_literal(tokens)]
        phrase = connection.ops.prep_for_like_query(" " + " ".join(tokens))
        return f"{lhs} LIKE %s ESCAPE '\\'", [*params, f"%{phrase}%"]


def _field(model) -> NameSearchField:
    return next(field for field in model._meta.concrete_fields if isinstance(field, NameSearchField))


def update_fields_with_document(model, update_fields):
    """For a model's save(): update_fields with the search field added when they name one of its
    sources (None, every field, stays None)."""
    if update_fields is None:
        return None
    field = _field(model)
    if set(update_fields) & set(field.sources):
        return {*update_fields, field.name}
    return update_fields


def names_reindex(model, *, batch_size: int = 5000) -> Iterator[tuple[int, int]]:
    """Makes every row's search tokens again, by id, a transaction per batch; yields (rows done,
    last id) after each batch (manage.py search_reindex). Safe while the server runs."""
    field = _field(model)
    done, last_id = 0, 0
    while True:
        with transaction.atomic():
            batch = list(model.objects.filter(pk__gt=last_id).order_by("pk").only("pk", *field.sources)[:batch_size])
            if not batch:
                return
            for row in batch:
                setattr(row, field.attname, field.names_of(row))
            model.objects.bulk_update(batch, [field.name])
        done += len(batch)
        last_id = batch[-1].pk
        yield done, last_id


def index_build(app_label: str, model_name: str) -> migrations.RunPython:
    """The migration step after adding a NameSearchField: tokens for the existing rows, then the
    GIN index on PostgreSQL (SQLite's LIKE needs none)."""
    index = f"{app_label}_{model_name.lower()}_search_document"

    def build(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        for _ in names_reindex(model):
            pass
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"CREATE INDEX {index} ON {model._meta.db_table} USING gin (search_document)")

    def drop(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX {index}")

    return migrations.RunPython(build, drop)
