from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Lower
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.exceptions import NotFound
from social_django.models import UserSocialAuth

from accounts.models import User
from imserver.pagination import paginate


def visible_users() -> QuerySet[User]:
    """Accounts other users may find and see: active and not banned."""
    return User.objects.filter(is_active=True, is_banned=False)


def user_visible(*, user_id: int | None) -> User:
    user = visible_users().filter(pk=user_id).first()
    if user is None:
        raise NotFound("User not found")
    return user


def users_search(*, query: str, limit: int, offset: int, hidden: Q | None = None) -> tuple[int, list[User]]:
    """Users whose username or nickname contains query, normalized (case, full and half width) and
    in any script, through their search tokens (imserver/namesearch.py); exact username matches
    first. `hidden`: a filter for users the searcher may not find (contacts.selectors.users_search_for)."""
    matches = visible_users().filter(search_document__matches=query)
    if hidden is not None:
        matches = matches.exclude(hidden)
    ranked = matches.annotate(
        exact=Case(When(username__iexact=query, then=Value(0)), default=Value(1), output_field=IntegerField())
    )
    return paginate(ranked, order_by=("exact", Lower("username"), "pk"), limit=limit, offset=offset)


def _profile(user: User) -> dict:
    return {
        "user_id": str(user.pk),
        "username": user.username,
        "email": user.email,
        "email_verified": user.email_verified,
        "nickname": user.nickname,
        "status_message": user.status_message,
        "avatar_file": user.avatar or None,
        "chosen_status": user.chosen_status,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
        "last_online": user.last_online,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_banned": user.is_banned,
        "banned_at": user.banned_at,
        "ban_reason": user.ban_reason,
    }


def _social_accounts(user: User) -> list[dict]:
    return [
        {"provider": link.provider, "uid": link.uid, "created": link.created}
        for link in UserSocialAuth.objects.filter(user=user).order_by("pk")
    ]


def export_sections(user: User) -> dict:
    """The account's part of a data export (privacy.services.user_export)."""
    return {"profile": _profile(user), "social_accounts": _social_accounts(user)}


def totp_device_confirmed(*, user: User) -> TOTPDevice | None:
    """The user's confirmed TOTP device (the admin's second factor), if they enrolled one."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()
