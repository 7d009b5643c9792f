"""Moderation writes. Each records who did what, to what and why in the audit log, in the same
transaction as the action, so the admin's actions and the operators' commands are logged alike.

`actor` is the moderator's User (admin) or a string "cli:<os user>" (commands, see cli_actor).
"""

import getpass
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group as AuthGroup
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts import services as accounts_services
from accounts.devices import device_sign_out
from accounts.models import Device, User
from chat import services as chat_services
from imserver.admin_tools import ActionRefused
from moderation import selectors
from moderation.models import AuditEntry, Report, SecurityPolicy, TargetType

if TYPE_CHECKING:
    from chat.models import Message

# A moderator, or a management command's "cli:<name>".
Actor = User | str

MODERATORS_GROUP = "Moderators"  # created with its permissions by migration 0002


class ModerationError(ActionRefused):
    """An action that cannot be carried out as asked (already banned, not allowed, ...)."""


def cli_actor() -> str:
    """The actor of a management command: "cli:<the operating-system user running it>"."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        name = "unknown"
    return f"cli:{name}"


def _audit(*, actor, action, target_type, target_id, target_repr, reason=""):
    is_user = isinstance(actor, User)
    return AuditEntry.objects.create(
        actor=actor if is_user else None,
        actor_name=actor.username if is_user else actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr[:200],
        reason=reason,
    )


# A moderator's reading of one private conversation is audited once per this interval.
MESSAGE_VIEW_AUDIT_INTERVAL = timedelta(hours=1)


def private_messages_viewed(*, actor: User, conversation_ids: Iterable[int]) -> None:
    """Audits a moderator's reading of private conversations' messages (an admin page showing
    them): one entry per moderator and conversation per hour, two queries whatever the page."""
    ids = set(conversation_ids)
    if not ids:
        return
    now = timezone.now()
    seen = set(
        AuditEntry.objects.filter(
            actor=actor,
            action=AuditEntry.Action.MESSAGE_VIEW,
            target_type="conversation",
            target_id__in=ids,
            created_at__gt=now - MESSAGE_VIEW_AUDIT_INTERVAL,
        ).values_list("target_id", flat=True)
    )
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor=actor,
            actor_name=actor.username,
            action=AuditEntry.Action.MESSAGE_VIEW,
            target_type="conversation",
            target_id=conversation_id,
            target_repr=f"c{conversation_id} (private)",
            created_at=now,
        )
        for conversation_id in sorted(ids - seen)
    )


def _require(text, what="A reason"):
    if not (text or "").strip():
        raise ModerationError(f"{what} is required")


def check_may_act_on(actor: Actor, user: User) -> None:
    """Moderators act on ordinary accounts only; superusers and commands on anyone but themselves."""
    if isinstance(actor, User):
        if actor.pk == user.pk:
            raise ModerationError("You cannot do this to your own account")
        if user.is_staff and not actor.is_superuser:
            raise ModerationError(f"{user.username} is staff: only a superuser can do this")


# --- Users --------------------------------------------------------------------------------------


def _user_target(user):
    return {"target_type": TargetType.USER, "target_id": user.pk, "target_repr": user.username}


@transaction.atomic
def user_ban(*, actor: Actor, user: User, reason: str) -> User:
    """Bans the user: tokens revoked at once, sockets closed with 4403, hidden from search."""
    _require(reason)
    user = User.objects.select_for_update().get(pk=user.pk)
    check_may_act_on(actor, user)
    if user.is_banned:
        raise ModerationError(f"{user.username} is already banned")
    accounts_services.user_mark_banned(user=user, reason=reason)
    _audit(actor=actor, action=AuditEntry.Action.USER_BAN, **_user_target(user), reason=reason)
    return user


@transaction.atomic
def user_unban(*, actor: Actor, user: User, reason: str = "") -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    check_may_act_on(actor, user)
    if not user.is_banned:
        raise ModerationError(f"{user.username} is not banned")
    accounts_services.user_mark_unbanned(user=user)
    _audit(actor=actor, action=AuditEntry.Action.USER_UNBAN, **_user_target(user), reason=reason)
    return user


def user_delete_audit(*, actor: Actor, user: User, reason: str = "") -> None:
    """Logs an erasure done by privacy.services.user_delete, under the tombstone's name."""
    _audit(actor=actor, action=AuditEntry.Action.USER_DELETE, **_user_target(user), reason=reason)


@transaction.atomic
def moderator_grant(*, actor: Actor, user: User) -> User:
    """Makes the user a moderator: staff, in the Moderators group (not a superuser)."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_active or user.is_banned:
        raise ModerationError(f"{user.username} is inactive or banned")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(AuthGroup.objects.get(name=MODERATORS_GROUP))
    _audit(actor=actor, action=AuditEntry.Action.MODERATOR_GRANT, **_user_target(user))
    return user


@transaction.atomic
def moderator_revoke(*, actor: Actor, user: User) -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    user.groups.remove(AuthGroup.objects.get(name=MODERATORS_GROUP))
    if not user.is_superuser:
        user.is_staff = False
        user.save(update_fields=["is_staff"])
    _audit(actor=actor, action=AuditEntry.Action.MODERATOR_REVOKE, **_user_target(user))
    return user


@transaction.atomic
def device_revoke(*, actor: Actor, device: Device, reason: str) -> None:
    """Signs a device out as its owner could (tokens refused, sockets closed with 4401, push
    registration gone): a stolen phone reported to support, a session a spammer rotates."""
    _require(reason)
    check_may_act_on(actor, device.user)
    target_repr = f"d{device.pk} ({device.platform or 'unknown'} {device.name}) of {device.user.username}"
    device_sign_out(device)
    _audit(
        actor=actor,
        action=AuditEntry.Action.DEVICE_REVOKE,
        target_type="device",
        target_id=device.pk,
        target_repr=target_repr,
        reason=reason,
    )


# --- Security policy ----------------------------------------------------------------------------


@transaction.atomic
def security_policy_set(*, actor: User, require_staff_2fa: bool, reason: str = "") -> SecurityPolicy:
    """Sets the admin's security policy; superusers only. A change is audited (who, when, what it
    became, why); setting what is already set changes and logs nothing."""
    if not actor.is_superuser:
        raise ModerationError("Only a superuser can change the security policy")
    policy, _ = SecurityPolicy.objects.select_for_update().get_or_create(pk=SecurityPolicy.SINGLETON)
    if policy.require_staff_2fa == require_staff_2fa:
        return policy
    policy.require_staff_2fa = require_staff_2fa
    policy.save(update_fields=["require_staff_2fa"])
    _audit(
        actor=actor,
        action=AuditEntry.Action.POLICY_CHANGE,
        target_type="policy",
        target_id=policy.pk,
        target_repr=str(policy),
        reason=reason,
    )
    return policy


# --- Messages -----------------------------------------------------------------------------------


@transaction.atomic
def message_takedown(*, actor: Actor, message: "Message", reason: str) -> "Message":
    """Removes the message for everyone (contract 10); see chat.services.message_remove."""
    _require(reason)
    if not chat_services.message_remove(message=message):
        raise ModerationError(f"m{message.pk} is already removed")
    _audit(
        actor=actor,
        action=AuditEntry.Action.MESSAGE_REMOVE,
        target_type=TargetType.MESSAGE,
        target_id=message.pk,
        target_repr=f"m{message.pk} by {message.sender.username} in c{message.conversation_id}",
        reason=reason,
    )
    return message


# --- Reports ------------------------------------------------------------------------------------


def report_create(
    *, reporter: User, target_type: str, target_id: int, reason: str, details: str = ""
) -> tuple[Report, bool]:
    """POST /v1/reports: (report, created). Reporting the same target again while the earlier
    report is open returns that one (created False)."""
    pk = selectors.report_target_id(reporter=reporter, target_type=target_type, raw_id=target_id)
    if target_type == TargetType.USER and pk == reporter.pk:
        raise ValidationError({"target_id": ["You cannot report yourself."]})
    open_report = Report.objects.filter(
        reporter=reporter, target_type=target_type, target_id=pk, status=Report.Status.OPEN
    )
    existing = open_report.first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            report = Report.objects.create(
                reporter=reporter, target_type=target_type, target_id=pk, reason=reason, details=details
            )
    except IntegrityError:  # the same report posted twice at once
        return open_report.get(), False
    return report, True


def report_resolve(*, actor: Actor, report: Report, note: str) -> Report:
    """The report was right and has been acted on (ban, removal...)."""
    return _report_close(actor=actor, report=report, status=Report.Status.RESOLVED, note=note)


def report_dismiss(*, actor: Actor, report: Report, note: str) -> Report:
    """Nothing to act on."""
    return _report_close(actor=actor, report=report, status=Report.Status.DISMISSED, note=note)


@transaction.atomic
def _report_close(*, actor, report, status, note):
    _require(note, "A note")
    report = Report.objects.select_for_update().get(pk=report.pk)
    if report.status != Report.Status.OPEN:
        raise ModerationError(f"r{report.pk} is already {report.status}")
    report.status = status
    report.note = note
    report.handled_by = actor if isinstance(actor, User) else None
    report.handled_at = timezone.now()
    report.save(update_fields=["status", "note", "handled_by", "handled_at"])
    action = AuditEntry.Action.REPORT_RESOLVE if status == Report.Status.RESOLVED else AuditEntry.Action.REPORT_DISMISS
    _audit(actor=actor, action=action, target_type="report", target_id=report.pk, target_repr=str(report), reason=note)
    return report
