"""Deleting many rows without long locks: the prune and purge commands work a batch at a time."""

from collections.abc import Iterator

from django.db import transaction
from django.db.models import QuerySet


def in_batches(pks: QuerySet, *, size: int) -> Iterator[list[int]]:
    """The primary keys `pks` selects, `size` at a time, each batch in a transaction of its own in
    which the caller deletes them (the loop's body runs inside it; leaving the loop by an exception
    rolls that batch back). The query runs again for every batch, so what the caller deleted must
    no longer match it."""
    while True:
        with transaction.atomic():
            batch = list(pks[:size])
            if not batch:
                return
            yield batch
