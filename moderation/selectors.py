"""Moderation reads: what a user may report, what moderators see around a report, and the
figures of the admin index and `imstats`."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.exceptions import NotFound

from accounts.models import User
from accounts.selectors import user_visible
from calls import selectors as calls_selectors
from chat import selectors as chat_selectors
from groups.selectors import group_for_member, groups_with_stats
from imserver.api import parse_id
from media import selectors as media_selectors
from moderation.models import AuditEntry, Report, SecurityPolicy, TargetType, target_label


def report_target_id(*, reporter: User, target_type: str, raw_id: str) -> int:
    """The id of the target named by raw_id ("m12", "7", "g3"), if the reporter can see it:
    a message of one of their conversations, a visible user, a group they are in. Else 404."""
    if target_type == TargetType.USER:
        pk = parse_id("", raw_id)
        user_visible(user_id=pk)
    elif target_type == TargetType.GROUP:
        pk = parse_id("g", raw_id)
        group_for_member(user=reporter, group_id=pk)
    else:
        pk = parse_id("m", raw_id)
        if pk is None or not chat_selectors.message_seen_by(user=reporter, message_id=pk):
            raise NotFound("Message not found")
    return pk


def report_context(report: Report) -> dict:
    """What a moderator needs to judge a report, for the report's admin page.

    message: it and the messages around it in its conversation; user: the profile and recent
    messages; group: its profile, owner and size. `target` is None when it no longer exists.
    """
    context = {"report": report, "target": None}
    if report.target_type == TargetType.MESSAGE:
        message = chat_selectors.message_with_conversation(report.target_id)
        if message is not None:
            context["target"] = message
            context["around"] = chat_selectors.messages_around(message)
    elif report.target_type == TargetType.USER:
        user = User.objects.filter(pk=report.target_id).first()
        if user is not None:
            context["target"] = user
            context["recent"] = chat_selectors.user_recent_messages(user, limit=10)
    else:
        context["target"] = groups_with_stats().filter(pk=report.target_id).first()  # None: dissolved since
    about_target = {"target_type": report.target_type, "target_id": report.target_id}
    context["other_reports"] = list(
        Report.objects.filter(**about_target).exclude(pk=report.pk).select_related("reporter").order_by("-pk")[:10]
    )
    context["history"] = list(AuditEntry.objects.filter(**about_target).order_by("-pk")[:10])
    return context


# --- Figures ------------------------------------------------------------------------------------


def users_count() -> int:
    return User.objects.filter(is_active=True).count()


def online_count() -> int:
    return User.objects.filter(is_online=True).count()


def open_reports_count() -> int:
    return Report.objects.filter(status=Report.Status.OPEN).count()


def _today():
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)


def _messages_in_last(*, days):
    return chat_selectors.messages_since(timezone.now() - timedelta(days=days))


def messages_today() -> int:
    return chat_selectors.messages_since(_today())


def calls_today() -> int:
    return calls_selectors.calls_since(_today())


# imstats prints each of these (key, label, function).
FIGURES = [
    ("users", "Users", users_count),
    ("online_now", "Online now", online_count),
    ("conversations", "Conversations", chat_selectors.conversations_count),
    (
        "messages_last_day",
        "Messages in the last day",
        lambda: _messages_in_last(days=1),
    ),
    (
        "messages_last_week",
        "Messages in the last week",
        lambda: _messages_in_last(days=7),
    ),
    ("open_reports", "Open reports", open_reports_count),
    ("media_bytes_stored", "Media bytes stored", media_selectors.media_bytes_stored),
    ("calls_today", "Calls today", calls_today),
]

# The admin index's "at a glance" figures: (label, function, admin URL name of the list or None).
ADMIN_FIGURES = [
    ("Users", users_count, "admin:accounts_user_changelist"),
    ("Online now", online_count, None),
    ("Messages today", messages_today, None),
    ("Open reports", open_reports_count, "admin:moderation_report_changelist"),
]


def export_sections(user: User) -> dict:
    """Moderation's part of a data export (privacy.services.user_export): the reports they made."""
    return {"reports_made": _reports_made(user)}


def _reports_made(user: User) -> list[dict]:
    return [
        {
            "report_id": f"r{report.pk}",
            "target": target_label(report.target_type, report.target_id),
            "reason": report.reason,
            "details": report.details,
            "status": report.status,
            "created_at": report.created_at,
        }
        for report in Report.objects.filter(reporter=user).order_by("pk")
    ]


def security_policy() -> SecurityPolicy:
    """The admin's security policy as stored (every switch off while no superuser set one)."""
    return SecurityPolicy.objects.filter(pk=SecurityPolicy.SINGLETON).first() or SecurityPolicy(
        pk=SecurityPolicy.SINGLETON
    )


def staff_two_factor_required() -> bool:
    """Whether every staff account must have a second factor for the admin: the ADMIN_REQUIRE_2FA
    setting, or else the superusers' policy (one primary-key query, no cache: a change holds at
    once on every process)."""
    return (
        settings.ADMIN_REQUIRE_2FA
        or SecurityPolicy.objects.filter(pk=SecurityPolicy.SINGLETON, require_staff_2fa=True).exists()
    )


def security_policy_changes(*, limit: int = 10) -> list[AuditEntry]:
    """The latest changes of the security policy, newest first."""
    return list(AuditEntry.objects.filter(action=AuditEntry.Action.POLICY_CHANGE).order_by("-pk")[:limit])
