"""Pages of a list with its total, as every list endpoint returns them."""

from collections.abc import Sequence

from django.db.models import Count, QuerySet, Window


def paginate(rows: QuerySet, *, order_by: Sequence, limit: int, offset: int) -> tuple[int, list]:
    """(total, page) in one query: the total is a window over the same rows. Only a page past the
    end, which has no row to carry the window, costs a COUNT."""
    page = list(rows.annotate(total=Window(Count("pk"))).order_by(*order_by)[offset : offset + limit])
    if page:
        return page[0].total, page
    return (rows.count() if offset else 0), page
