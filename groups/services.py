"""Group writes. Membership changes lock the group's conversation row, which also serializes
them with message sends: a message reaches exactly the members it was sent to."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied, Throttled, ValidationError

from accounts.models import User
from accounts.selectors import visible_users
from chat.models import Conversation, Membership
from chat.selectors import member_ids
from contacts.selectors import refusing
from groups import selectors
from groups.models import Group
from imserver.api import Conflict, format_id, parse_id
from imserver.ratelimit import check_rate
from media.services import avatar_replace
from realtime import events
from realtime.cache import MEMBERS

Role = Membership.Role


def _group_event(recipients, group, update_type, subject, **extra):
    data = {
        "group_id": format_id("g", group.pk),
        "update_type": update_type,
        "user_id": str(subject.pk),
        "user_name": subject.display_name,
        "updated_at": timezone.now(),
        **extra,
    }
    return events.Event(recipients, "group_update", data)


def _resolve_users(raw_ids, field, *, adder):
    """User ids as sent ("12") -> the visible users they name that adder may add to a group; any
    unknown one is a 400. Those who blocked adder or keep who_can_add_to_groups to contacts
    without adder among them are skipped, in the same query (contract 16)."""
    ids = {parse_id("", raw) for raw in raw_ids}
    rows = visible_users().filter(pk__in=ids - {None})
    rows = rows.annotate(refuses=refusing(actor_id=adder.pk, setting="who_can_add_to_groups"))
    users = {user.pk: user for user in rows}
    unknown = sorted(raw for raw in raw_ids if parse_id("", raw) not in users)
    if unknown:
        raise ValidationError({field: [f"Unknown user ids: {', '.join(unknown)}."]})
    return {pk: user for pk, user in users.items() if not user.refuses}


def _check_size(count, field):
    if count > settings.GROUP_MAX_MEMBERS:
        raise ValidationError({field: [f"A group has at most {settings.GROUP_MAX_MEMBERS} members."]})


@transaction.atomic
def group_create(*, owner: User, name: str, member_ids: list[str]) -> Group:
    """A group and its conversation, with the caller as owner; each added member is told."""
    members = _resolve_users(member_ids, "members", adder=owner)
    members.pop(owner.pk, None)
    _check_size(len(members) + 1, "members")
    conversation = Conversation.objects.create(type=Conversation.Type.GROUP)
    group = Group.objects.create(conversation=conversation, name=name.strip())
    Membership.objects.bulk_create(
        [Membership(conversation=conversation, user=owner, role=Role.OWNER)]
        + [Membership(conversation=conversation, user=user) for user in members.values()]
    )
    # Each new member hears of the group once (not of every other member: that would be N²).
    events.record(*[_group_event([user.pk], group, "new_member", user) for user in members.values()])
    return group


def _check_membership_rate(group):
    """Each membership change tells every member: at most RATE_LIMITS["group_membership"] changes
    per group (a remove/re-invite loop in a group of 1,000 wrote 1,000 events a cycle)."""
    if wait := check_rate("group_membership", f"group:{group.pk}"):
        raise Throttled(wait, "Membership of this group is changing too often; retry later.")


def _locked_membership(*, user, group_id):
    """The caller's membership with its role as of the conversation lock (404 if they were
    removed while waiting for it)."""
    membership = selectors.group_for_member(user=user, group_id=group_id)
    Conversation.objects.select_for_update().filter(pk=membership.conversation_id).first()
    membership.role = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()
    if membership.role is None:
        raise NotFound("Group not found")
    return membership


@transaction.atomic
def group_update_info(
    *,
    user: User,
    group_id: int,
    name: str | None = None,
    announcement: str | None = None,
    avatar: str | None = None,
) -> Group:
    membership = _locked_membership(user=user, group_id=group_id)
    if membership.role not in (Role.OWNER, Role.ADMIN):
        raise PermissionDenied("Only the group's owner and admins can change it")
    group = membership.conversation.group
    fields = []
    if name is not None:
        group.name = name.strip()
        fields.append("name")
    if announcement is not None:
        group.announcement = announcement
        fields.append("announcement")
    if avatar is not None:
        group.avatar = avatar_replace(owner=user, old=group.avatar, value=avatar)
        fields.append("avatar")
    if fields:
        group.save(update_fields=fields)
        events.record(_group_event(member_ids(group.conversation_id), group, "info_updated", user))
    return group


@transaction.atomic
def group_invite(*, user: User, group_id: int, user_ids: list[str]) -> list[str]:
    """Adds users to the group (any member may invite); returns the ids actually added."""
    membership = _locked_membership(user=user, group_id=group_id)
    conversation = Conversation.objects.get(pk=membership.conversation_id)
    group = membership.conversation.group
    invited = _resolve_users(user_ids, "user_ids", adder=user)
    current = set(member_ids(conversation.pk))
    added = [candidate for pk, candidate in invited.items() if pk not in current]
    _check_size(len(current) + len(added), "user_ids")
    if added:
        _check_membership_rate(group)
    Membership.objects.bulk_create(
        # Joining members start with nothing unread; the history is theirs to page through.
        [
            Membership(
                conversation=conversation,
                user=new,
                last_read_seq=conversation.last_seq,
                receipt_seq=conversation.last_seq,
                delivered_seq=conversation.last_seq,
            )
            for new in added
        ]
    )
    events.invalidate_on_commit(MEMBERS, [conversation.pk])
    # The members hear of each newcomer; a newcomer hears of their own joining only (as in
    # group_create: telling every newcomer of every other would be quadratic in the invite).
    events.record(*[_group_event([*current, new.pk], group, "new_member", new) for new in added])
    return [str(new.pk) for new in added]


def _target_membership(conversation_id, target_user_id):
    target = (
        Membership.objects.select_related("user")
        .filter(conversation_id=conversation_id, user_id=target_user_id)
        .first()
    )
    if target is None:
        raise NotFound("That user is not a member of this group")
    return target


@transaction.atomic
def group_member_remove(*, user: User, group_id: int, target_user_id: int) -> None:
    """A member leaving (own id), an admin removing a member, or the owner removing anyone.

    The owner leaves only after transferring ownership (409), unless they are the last member,
    in which case the group is dissolved.
    """
    membership = _locked_membership(user=user, group_id=group_id)
    group = membership.conversation.group
    target = _target_membership(membership.conversation_id, target_user_id)
    if target.user_id == user.pk:
        if membership.role == Role.OWNER and len(member_ids(group.conversation_id)) > 1:
            raise Conflict("The owner must transfer ownership before leaving the group")
        _leave(membership, group, user)
        return
    may_remove = membership.role == Role.OWNER or (membership.role == Role.ADMIN and target.role == Role.MEMBER)
    if not may_remove:
        raise PermissionDenied("You cannot remove this member")
    _check_membership_rate(group)
    audience = member_ids(group.conversation_id)
    target.delete()
    events.invalidate_on_commit(MEMBERS, [group.conversation_id])
    events.record(_group_event(audience, group, "member_removed", target.user))


@transaction.atomic
def group_member_leave(*, user: User, group_id: int) -> None:
    """The member leaves for good, whatever their role (account deletion): an owner hands
    ownership to the oldest admin, else the oldest member; the last member dissolves the group."""
    membership = _locked_membership(user=user, group_id=group_id)
    _leave(membership, membership.conversation.group, user)


def erase_user(user: User) -> None:
    """An erased account leaves each of its groups (privacy.services.user_delete), a transaction per
    group: as any leave, it locks the group, so several in one would risk deadlocks with sends."""
    for group_id in Group.objects.filter(conversation__memberships__user=user).values_list("pk", flat=True):
        group_member_leave(user=user, group_id=group_id)


def _leave(membership, group, user):
    """The member leaves (the conversation locked): the last one dissolves the group; an owner
    hands ownership to the oldest admin, else the oldest member. Everyone, the leaver
    included, hears of it."""
    audience = member_ids(group.conversation_id)
    events.invalidate_on_commit(MEMBERS, [group.conversation_id])
    if len(audience) == 1:
        group.conversation.delete()
        return
    membership.delete()  # first: one owner at a time
    updates = [_group_event(audience, group, "member_left", user)]
    if membership.role == Role.OWNER:
        successor = (
            Membership.objects.filter(conversation_id=group.conversation_id)
            .select_related("user")
            .order_by(*selectors.MEMBER_ORDER)
            .first()
        )
        successor.role = Role.OWNER
        successor.save(update_fields=["role"])
        updates.append(_group_event(audience, group, "role_changed", successor.user, role=Role.OWNER))
    events.record(*updates)


@transaction.atomic
def group_member_set_role(*, user: User, group_id: int, target_user_id: int, role: str) -> Membership:
    """The owner sets a member's role; role "owner" transfers ownership (the old owner becomes admin)."""
    membership = _locked_membership(user=user, group_id=group_id)
    if membership.role != Role.OWNER:
        raise PermissionDenied("Only the group's owner can change roles")
    group = membership.conversation.group
    target = _target_membership(membership.conversation_id, target_user_id)
    if target.user_id == user.pk:
        raise ValidationError({"role": ["The owner changes their own role by transferring ownership."]})
    _check_membership_rate(group)
    changed = [target]
    if role == Role.OWNER:
        membership.role = Role.ADMIN
        membership.save(update_fields=["role"])  # first: one owner at a time
        changed.insert(0, membership)
    target.role = role
    target.save(update_fields=["role"])
    audience = member_ids(group.conversation_id)
    events.record(*[_group_event(audience, group, "role_changed", m.user, role=m.role) for m in changed])
    return target
