"""One normalization of usernames and emails (contract 23): NFKC, then case-folded.

Lookups, uniqueness checks and every lockout or rate-limit key keyed by a name go through here, so
no spelling reaches an account under a key of its own. PostgreSQL's `iexact` (UPPER) matches more
than `str.lower()` does (`ſ` is `S`, `ı` is `I`): a lookup here returns only accounts whose name
normalizes to the same text as the one typed, and keys are made of that same text."""

import unicodedata

from django.db.models import Q

from accounts.models import User


def normalize(value: str) -> str:
    """`ＡＬＩＣＥ`, `ALICE` and `alice` are `alice`; `ſam` is `sam`; `alıce` stays itself."""
    return unicodedata.normalize("NFKC", value).casefold()


def users_matching(field: str, value: str, queryset=None) -> list[User]:
    """The accounts whose `field` ("username" or "email") normalizes as `value` does, oldest first."""
    key = normalize(value)
    queryset = User.objects.all() if queryset is None else queryset
    candidates = queryset.filter(Q(**{f"{field}__iexact": value}) | Q(**{f"{field}__iexact": key})).order_by("pk")
    return [user for user in candidates if normalize(getattr(user, field)) == key]


def user_matching(field: str, value: str, queryset=None) -> User | None:
    matches = users_matching(field, value, queryset)
    return matches[0] if matches else None
