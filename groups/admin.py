from django.contrib import admin
from django.utils.html import format_html, format_html_join

from accounts.models import User
from chat.admin import conversation_label
from chat.models import Conversation, Membership
from groups.models import Group
from groups.selectors import MEMBER_ORDER, groups_with_stats
from imserver.admin_tools import LargeTableMixin, NameSearchMixin, ReadOnlyMixin, admin_link


@admin.register(Group)
class GroupAdmin(LargeTableMixin, NameSearchMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Groups and their members with roles; changes go through the app (its owner and admins)."""

    list_display = ("group", "name", "owner", "members_count", "created_at")
    search_fields = ("name",)  # through NameSearchMixin
    list_filter = ("created_at",)
    ordering = ("-pk",)
    fields = ("name", "announcement", "avatar", "created_at", "conversation_link", "members")

    def get_queryset(self, request):
        return groups_with_stats(super().get_queryset(request).select_related("conversation"))

    @admin.display(description="group", ordering="pk")
    def group(self, group):
        return f"g{group.pk}"

    @admin.display(description="owner")
    def owner(self, group):
        return admin_link(User, group.owner_id, group.owner_name) if group.owner_id else "-"

    @admin.display(description="members")
    def members_count(self, group):
        return group.member_count

    @admin.display(description="conversation")
    def conversation_link(self, group):
        return admin_link(Conversation, group.conversation_id, conversation_label(group.conversation))

    @admin.display(description="members and roles")
    def members(self, group):
        memberships = (
            Membership.objects.filter(conversation_id=group.conversation_id)
            .select_related("user")
            .order_by(*MEMBER_ORDER)
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (admin_link(User, m.user_id, m.user.username), m.role, f"{m.joined_at:%Y-%m-%d %H:%M}")
                for m in memberships
            ),
        )
        return format_html("<table><tr><th>User</th><th>Role</th><th>Joined</th></tr>{}</table>", rows)
