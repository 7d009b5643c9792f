"""Reports from users and the audit log of what moderators and operators did."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TargetType(models.TextChoices):
    """What a report can be about."""

    MESSAGE = "message"
    USER = "user"
    GROUP = "group"


# How the API writes each kind of id ("m12", "12", "g3"; reports "r4").
ID_PREFIXES = {
    "message": "m",
    "user": "",
    "group": "g",
    "report": "r",
    "conversation": "c",
    "device": "d",
    "policy": "",
}


def target_label(target_type, target_id):
    """A report's or audit entry's target as people read it, e.g. "message m12"."""
    return f"{target_type} {ID_PREFIXES[target_type]}{target_id}"


class Report(models.Model):
    """A user's report of a message, a user or a group, handled by a moderator.

    The target is a (type, id) pair rather than a foreign key: a report outlives its target
    (a dissolved group), and the admin links to it without a join.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"
        DISMISSED = "dismissed"

    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    target_type = models.CharField(max_length=8, choices=TargetType.choices)
    target_id = models.BigIntegerField()
    reason = models.CharField(max_length=200)
    details = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="The moderator's note on how the report was handled.")

    class Meta:
        constraints = [
            # One open report per reporter and target: reporting again returns it.
            models.UniqueConstraint(
                fields=["reporter", "target_type", "target_id"],
                condition=Q(status="open"),
                name="moderation_report_one_open",
            ),
        ]
        indexes = [
            # The open-reports queue (oldest first) and its count on the admin index.
            models.Index(fields=["status", "created_at"], name="moderation_report_queue"),
            # All reports about one target (shown beside each report).
            models.Index(fields=["target_type", "target_id"], name="moderation_report_target"),
        ]
        permissions = [("handle_report", "Can resolve and dismiss reports")]

    def __str__(self):
        return f"r{self.pk}: {target_label(self.target_type, self.target_id)}"


class AuditEntry(models.Model):
    """One moderation or operations action: who, what, on what, when and why. Never changed."""

    class Action(models.TextChoices):
        USER_BAN = "user_ban", "ban user"
        USER_UNBAN = "user_unban", "unban user"
        USER_DELETE = "user_delete", "delete user"
        MESSAGE_REMOVE = "message_remove", "remove message"
        REPORT_RESOLVE = "report_resolve", "resolve report"
        REPORT_DISMISS = "report_dismiss", "dismiss report"
        MODERATOR_GRANT = "moderator_grant", "make moderator"
        MODERATOR_REVOKE = "moderator_revoke", "remove moderator"
        DEVICE_REVOKE = "device_revoke", "sign out device"
        # A moderator read a private conversation's messages in the admin (once an hour per
        # moderator and conversation: moderation.services.private_messages_viewed).
        MESSAGE_VIEW = "message_view", "view private messages"
        # A superuser changed the admin's security policy (moderation.services.security_policy_set).
        POLICY_CHANGE = "policy_change", "change security policy"

    # The moderator's account, or null for a command (then `actor_name` is "cli:<os user>").
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField("actor", max_length=160)
    action = models.CharField(max_length=20, choices=Action.choices)
    target_type = models.CharField(
        max_length=12,
        choices=[
            *TargetType.choices,
            ("report", "Report"),
            ("device", "Device"),
            ("conversation", "Conversation"),
            ("policy", "Security policy"),
        ],
    )
    target_id = models.BigIntegerField()
    # What the target was at the time (e.g. "alice", "m12 by alice in c3").
    target_repr = models.CharField("target as it was", max_length=200)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            # The history of one target (shown on reports, searched in the admin).
            models.Index(fields=["target_type", "target_id"], name="moderation_audit_target"),
        ]

    def __str__(self):
        return f"{self.actor_name} {self.get_action_display()} {self.target_repr}"


class SecurityPolicy(models.Model):
    """The admin's security switches: one row (pk 1; none yet means every switch off), changed by
    a superuser only, each change in the audit log (moderation.services.security_policy_set). Read
    from the database on each admin request that needs it, so a change holds at once on every
    process."""

    SINGLETON = 1

    # Every staff account must enrol a TOTP device before it can use the admin (as with the
    # ADMIN_REQUIRE_2FA setting, which forces it on whatever this says).
    require_staff_2fa = models.BooleanField("require two-factor for every staff account", default=False)

    class Meta:
        verbose_name = verbose_name_plural = "security policy"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="moderation_security_policy_singleton")]

    def __str__(self):
        return f"staff two-factor {'required' if self.require_staff_2fa else 'optional'}"
