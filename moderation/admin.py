from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import Device, User
from chat.models import Conversation, Message
from groups.models import Group
from imserver.admin_tools import (
    LargeTableMixin,
    ObjectActionsMixin,
    ReadOnlyMixin,
    admin_link,
    confirm_with_reason,
)
from moderation import selectors, services
from moderation.models import AuditEntry, Report, target_label

admin.site.site_header = "imserver administration"
admin.site.site_title = "imserver admin"
admin.site.site_url = None  # no public site to link to

TARGET_MODELS = {
    "message": Message,
    "user": User,
    "group": Group,
    "report": Report,
    "conversation": Conversation,
    "device": Device,
}


def target_link(obj):
    """A link to a report's or audit entry's target, from its type and id (no query)."""
    if obj.target_type == "policy":
        return format_html('<a href="{}">security policy</a>', reverse("admin:security_policy"))
    return admin_link(TARGET_MODELS[obj.target_type], obj.target_id, target_label(obj.target_type, obj.target_id))


class ReportStatusFilter(admin.SimpleListFilter):
    """The list opens on the queue of open reports."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*Report.Status.choices, ("all", "All")]

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            selected = self.value() == value or (self.value() is None and value == Report.Status.OPEN)
            yield {
                "selected": selected,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self.value() or Report.Status.OPEN
        return queryset if value == "all" else queryset.filter(status=value)


@admin.register(Report)
class ReportAdmin(LargeTableMixin, ReadOnlyMixin, ObjectActionsMixin, admin.ModelAdmin):
    """The reports queue: open reports, oldest first; each page shows the reported content in
    context. Moderators resolve (acted on it) or dismiss (nothing to do) with a note."""

    list_display = ("report", "created_at", "target", "reason", "reporter_link", "status", "handled_by")
    list_filter = (ReportStatusFilter, "target_type", "created_at")
    search_fields = ("reason", "details", "=reporter__username")
    list_select_related = ("reporter", "handled_by")
    ordering = ("created_at", "pk")
    actions = ["resolve_reports", "dismiss_reports"]
    fields = (
        "target",
        "reporter_link",
        "reason",
        "details",
        "created_at",
        "status",
        "handled_by",
        "handled_at",
        "note",
        "reported_content",
    )

    def has_handle_permission(self, request):
        return request.user.has_perm("moderation.handle_report")

    def get_object_actions(self, report):
        if report.status != Report.Status.OPEN:
            return []
        return [("resolve_reports", "Resolve…"), ("dismiss_reports", "Dismiss…")]

    @admin.display(description="report", ordering="pk")
    def report(self, report):
        return f"r{report.pk}"

    @admin.display(description="target")
    def target(self, report):
        return target_link(report)

    @admin.display(description="reporter", ordering="reporter")
    def reporter_link(self, report):
        return admin_link(User, report.reporter_id, report.reporter.username)

    @admin.display(description="Reported content")
    def reported_content(self, report):
        return render_to_string("admin/moderation/report_context.html", selectors.report_context(report))

    @admin.action(permissions=["handle"], description="Resolve selected reports (acted on them)…")
    def resolve_reports(self, request, queryset):
        return confirm_with_reason(
            self,
            request,
            queryset,
            title="Resolve reports",
            label="Note",
            apply=lambda report, note: services.report_resolve(actor=request.user, report=report, note=note),
        )

    @admin.action(permissions=["handle"], description="Dismiss selected reports (nothing to act on)…")
    def dismiss_reports(self, request, queryset):
        return confirm_with_reason(
            self,
            request,
            queryset,
            title="Dismiss reports",
            label="Note",
            apply=lambda report, note: services.report_dismiss(actor=request.user, report=report, note=note),
        )


@admin.register(AuditEntry)
class AuditEntryAdmin(LargeTableMixin, ReadOnlyMixin, admin.ModelAdmin):
    """What moderators and operators did. Read-only for everyone, superusers included."""

    list_display = ("created_at", "actor_name", "action", "target", "target_repr", "reason")
    list_filter = ("action", "target_type", "created_at")
    search_fields = ("actor_name", "target_repr", "reason")
    ordering = ("-pk",)
    fields = ("created_at", "actor_name", "actor", "action", "target", "target_repr", "reason")

    @admin.display(description="target")
    def target(self, entry):
        return target_link(entry)
