from django.db.models import Case, Count, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from rest_framework.exceptions import NotFound

from accounts.models import User
from chat.models import Membership
from groups.models import Group
from imserver.pagination import paginate


def group_for_member(*, user: User, group_id: int | None) -> Membership:
    """The caller's membership of a group (with .conversation.group), else 404."""
    membership = (
        Membership.objects.select_related("conversation__group")
        .filter(conversation__group__pk=group_id, user=user)
        .first()
    )
    if membership is None:
        raise NotFound("Group not found")
    return membership


def groups_with_stats(groups: QuerySet[Group] | None = None) -> QuerySet[Group]:
    """Groups annotated with `owner_id`, `owner_name` and `member_count`: subqueries, evaluated
    for the rows fetched only (one query for a page of groups)."""
    members = Membership.objects.filter(conversation=OuterRef("conversation"))
    owner = members.filter(role=Membership.Role.OWNER)
    count = members.order_by().values("conversation").annotate(n=Count("pk")).values("n")
    return (Group.objects.all() if groups is None else groups).annotate(
        owner_id=Subquery(owner.values("user_id")[:1]),
        owner_name=Subquery(owner.values("user__username")[:1]),
        member_count=Subquery(count),
    )


def group_with_stats(group_id: int) -> Group:
    """One group of groups_with_stats, in one query."""
    return groups_with_stats().get(pk=group_id)


_ROLE_RANK = Case(
    When(role=Membership.Role.OWNER, then=Value(0)),
    When(role=Membership.Role.ADMIN, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
# How members are listed: owner, admins, members, each by join time.
MEMBER_ORDER = (_ROLE_RANK, "joined_at", "pk")


def group_members(*, group: Group, limit: int, offset: int) -> tuple[int, list[Membership]]:
    """(total, memberships with users): owner first, then admins, then members by join time."""
    memberships = Membership.objects.filter(conversation_id=group.conversation_id)
    return paginate(memberships.select_related("user"), order_by=MEMBER_ORDER, limit=limit, offset=offset)
