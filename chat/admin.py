from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from accounts.models import User
from chat import selectors as chat_selectors
from chat.models import Conversation, Membership, Message, MessageEdit
from groups.models import Group
from groups.selectors import MEMBER_ORDER
from imserver.admin_tools import (
    LargeTableMixin,
    ObjectActionsMixin,
    ReadOnlyMixin,
    admin_link,
    confirm_with_reason,
)
from moderation import services


def conversation_label(conversation):
    """ "c12 · Team" for a group (with conversation__group selected), "c12 (private)" otherwise."""
    if conversation.type == Conversation.Type.GROUP:
        return f"c{conversation.pk} · {conversation.group.name}"
    return f"c{conversation.pk} (private)"


def audit_private_reads(request, conversations):
    """A page showing private messages leaves an audit entry per conversation (hourly)."""
    services.private_messages_viewed(
        actor=request.user,
        conversation_ids=[c.pk for c in conversations if c.type == Conversation.Type.PRIVATE],
    )


class MembershipInline(ReadOnlyMixin, admin.TabularInline):
    model = Membership
    fk_name = "conversation"
    fields = ("user", "role", "peer", "joined_at", "last_read_seq")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "peer").order_by(*MEMBER_ORDER)


@admin.register(Conversation)
class ConversationAdmin(LargeTableMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("conversation", "type", "last_seq", "last_activity_at", "created_at")
    list_filter = ("type", "created_at")
    search_fields = ("group__name",)
    list_select_related = ("group",)
    ordering = ("-pk",)
    fields = ("type", "group_link", "last_seq", "last_activity_at", "created_at", "messages")
    inlines = [MembershipInline]

    @admin.display(description="conversation", ordering="pk")
    def conversation(self, conversation):
        return conversation_label(conversation)

    @admin.display(description="group")
    def group_link(self, conversation):
        if conversation.type != Conversation.Type.GROUP:
            return "-"
        return admin_link(Group, conversation.group.pk, conversation.group.name)

    @admin.display(description="messages")
    def messages(self, conversation):
        url = reverse("admin:chat_message_changelist") + f"?conversation__id__exact={conversation.pk}"
        return format_html('<a href="{}">{} messages</a>', url, conversation.last_seq)


class MessageEditInline(ReadOnlyMixin, admin.TabularInline):
    """A message's edit history: what it said before each edit, newest first (contract 15)."""

    model = MessageEdit
    fields = ("edited_at", "editor", "content", "caption")
    readonly_fields = fields
    ordering = ("-edited_at", "-pk")
    verbose_name = "earlier version"
    verbose_name_plural = "edit history (what it said before each edit)"
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("editor")


@admin.register(Message)
class MessageAdmin(LargeTableMixin, ReadOnlyMixin, ObjectActionsMixin, admin.ModelAdmin):
    """Messages are never edited or deleted here: moderators remove them (chat.remove_message)."""

    list_display = ("message", "created_at", "sender_link", "conversation_link", "type", "status", "excerpt")
    list_filter = ("type", "status", "removed_by", "created_at")
    search_fields = ("content",)
    list_select_related = ("sender", "conversation__group")
    ordering = ("-pk",)
    actions = ["remove_messages"]
    fields = (
        "sender_link",
        "conversation_link",
        "seq",
        "type",
        "status",
        "removed_by",
        "content",
        "caption",
        "created_at",
        "edited_at",
        "updated_at",
        "around",
    )
    inlines = [MessageEditInline]

    def has_remove_permission(self, request):
        return request.user.has_perm("chat.remove_message")

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            audit_private_reads(request, [message.conversation for message in changelist.result_list])
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        original = getattr(response, "context_data", {}).get("original")
        if original is not None:
            audit_private_reads(request, [original.conversation])
        return response

    def get_object_actions(self, message):
        return [] if message.status == Message.Status.REMOVED else [("remove_messages", "Remove…")]

    @admin.display(description="message", ordering="pk")
    def message(self, message):
        return f"m{message.pk}"

    @admin.display(description="sender", ordering="sender")
    def sender_link(self, message):
        return admin_link(User, message.sender_id, message.sender.username)

    @admin.display(description="conversation", ordering="conversation")
    def conversation_link(self, message):
        return admin_link(Conversation, message.conversation_id, conversation_label(message.conversation))

    @admin.display(description="content")
    def excerpt(self, message):
        return Truncator(message.content).chars(80)

    @admin.display(description="In its conversation")
    def around(self, message):
        context = {"messages": chat_selectors.messages_around(message), "highlight": message.pk}
        return render_to_string("admin/moderation/messages_table.html", context)

    @admin.action(permissions=["remove"], description="Remove selected messages…")
    def remove_messages(self, request, queryset):
        return confirm_with_reason(
            self,
            request,
            queryset,
            title="Remove messages",
            apply=lambda message, reason: services.message_takedown(actor=request.user, message=message, reason=reason),
        )
