from django.contrib import admin

from accounts.models import User
from calls.models import Call
from chat.models import Conversation
from imserver.admin_tools import LargeTableMixin, ReadOnlyMixin, admin_link


@admin.register(Call)
class CallAdmin(LargeTableMixin, ReadOnlyMixin, admin.ModelAdmin):
    """Call history; the server only ever saw the signaling, so that is all there is to see."""

    list_display = ("call", "created_at", "caller_link", "callee_link", "type", "status", "duration_shown")
    list_filter = ("status", "type", "created_at")
    search_fields = ("caller__username", "callee__username")
    list_select_related = ("caller", "callee")
    ordering = ("-pk",)
    fields = (
        "caller_link",
        "callee_link",
        "conversation_link",
        "type",
        "status",
        "duration_shown",
        "created_at",
        "connected_at",
        "ended_at",
    )

    @admin.display(description="call", ordering="pk")
    def call(self, call):
        return f"call{call.pk}"

    @admin.display(description="caller")
    def caller_link(self, call):
        return admin_link(User, call.caller_id, call.caller.username)

    @admin.display(description="callee")
    def callee_link(self, call):
        return admin_link(User, call.callee_id, call.callee.username)

    @admin.display(description="conversation")
    def conversation_link(self, call):
        return admin_link(Conversation, call.conversation_id, f"c{call.conversation_id}")

    @admin.display(description="duration (s)")
    def duration_shown(self, call):
        return "-" if call.duration is None else call.duration
