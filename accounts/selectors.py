from django.db.models import Case, IntegerField, Q, Value, When
from django.db.models.functions import Lower
from rest_framework.exceptions import NotFound

from accounts.models import User


def visible_users():
    """Accounts other users may find and see: active and not banned."""
    return User.objects.filter(is_active=True, is_banned=False)


def user_visible(*, user_id):
    user = visible_users().filter(pk=user_id).first()
    if user is None:
        raise NotFound("User not found")
    return user


def users_search(*, query, limit, offset, hidden=None):
    """Case-insensitive match on username or nickname; exact username matches first. `hidden`:
    a filter for users the searcher may not find (contacts.selectors.users_search_for)."""
    matches = visible_users().filter(Q(username__icontains=query) | Q(nickname__icontains=query))
    if hidden is not None:
        matches = matches.exclude(hidden)
    total = matches.count()
    ranked = matches.annotate(
        exact=Case(When(username__iexact=query, then=Value(0)), default=Value(1), output_field=IntegerField())
    ).order_by("exact", Lower("username"), "pk")
    return total, list(ranked[offset : offset + limit])
