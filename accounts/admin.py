from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.models import Device, User
from accounts.services import user_password_set, user_revoke_tokens
from chat import selectors as chat_selectors
from chat.admin import audit_private_reads
from chat.models import Conversation, Membership
from groups.models import Group
from imserver.admin_tools import (
    LargeTableMixin,
    NameSearchMixin,
    ObjectActionsMixin,
    ReadOnlyMixin,
    admin_link,
    confirm_with_reason,
)
from moderation import services


class PasswordChangeForm(AdminPasswordChangeForm):
    """A password set or disabled here revokes the user's tokens, as a change through the API does."""

    def save(self):
        password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        user_password_set(user=self.user, password=password)
        return self.user


@admin.register(User)
class UserAdmin(LargeTableMixin, NameSearchMixin, ObjectActionsMixin, DjangoUserAdmin):
    """Users: moderators view them and ban or unban (accounts.ban_user); only superusers edit
    accounts, and nobody deletes one here (deletion is `manage.py delete_user`, a tombstone)."""

    list_display = ("username", "nickname", "email", "status", "is_banned", "is_staff", "date_joined")
    list_filter = ("is_online", "chosen_status", "is_banned", "is_staff", "is_active", "date_joined")
    search_fields = ("username", "email", "nickname")
    search_also = ("email",)  # names through NameSearchMixin
    ordering = ("-pk",)  # the primary key index; "username" would sort the whole table
    actions = ["ban_users", "unban_users"]
    change_password_form = PasswordChangeForm
    readonly_fields = (
        "is_online",
        "last_online",
        "is_banned",
        "banned_at",
        "ban_reason",
        "token_version",
        "date_joined",
        "last_login",
        "chat_groups",
        "recent_messages",
        "devices",
    )
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("nickname", "email", "status_message", "avatar", "chosen_status")}),
        ("Presence", {"fields": ("is_online", "last_online")}),
        ("Moderation", {"fields": ("is_banned", "banned_at", "ban_reason")}),
        ("Devices", {"fields": ("devices",)}),
        ("Groups and messages", {"fields": ("chat_groups", "recent_messages")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login", "token_version")}),
    )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Viewers (moderators) do not need the password hash's summary.
            fieldsets = ((None, {"fields": ("username",)}), *fieldsets[1:])
        return fieldsets

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        user = getattr(response, "context_data", {}).get("original")
        if user is not None:  # the page shows the user's recent messages, private ones too
            audit_private_reads(
                request, [message.conversation for message in chat_selectors.user_recent_messages(user)]
            )
        return response

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            user_revoke_tokens(obj)  # a deactivated account's tokens, sockets and sessions end now

    def has_ban_permission(self, request):
        return request.user.has_perm("accounts.ban_user")

    def get_object_actions(self, obj):
        return [("unban_users", "Unban…")] if obj.is_banned else [("ban_users", "Ban…")]

    @admin.display(description="Chat groups")
    def chat_groups(self, user):
        memberships = (
            Membership.objects.filter(user=user, conversation__type=Conversation.Type.GROUP)
            .select_related("conversation__group")
            .order_by("-joined_at")
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link(Group, m.conversation.group.pk, m.conversation.group.name),
                    m.role,
                    f"{m.joined_at:%Y-%m-%d %H:%M}",
                )
                for m in memberships
            ),
        )
        if not rows:
            return "None"
        return format_html("<table><tr><th>Group</th><th>Role</th><th>Joined</th></tr>{}</table>", rows)

    @admin.display(description="Signed-in devices")
    def devices(self, user):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link(Device, device.pk, f"d{device.pk} {device.name}"),
                    device.platform or "unknown",
                    device.push_provider or "none",
                    f"{device.created_at:%Y-%m-%d %H:%M}",
                    f"{device.last_seen_at:%Y-%m-%d %H:%M}",
                )
                for device in user.devices.order_by("-last_seen_at", "-pk")
            ),
        )
        if not rows:
            return "None"
        everything = reverse("admin:accounts_device_changelist") + f"?user__id__exact={user.pk}"
        return format_html(
            "<table><tr><th>Device</th><th>Platform</th><th>Push</th><th>Signed in</th><th>Last seen</th></tr>{}"
            '</table><p><a href="{}">Sign out devices of {}…</a></p>',
            rows,
            everything,
            user.username,
        )

    @admin.display(description="Recent messages")
    def recent_messages(self, user):
        table = render_to_string(
            "admin/moderation/messages_table.html", {"messages": chat_selectors.user_recent_messages(user)}
        )
        everything = reverse("admin:chat_message_changelist") + f"?sender__id__exact={user.pk}"
        return format_html('{}<p><a href="{}">All messages by {}</a></p>', table, everything, user.username)

    @admin.action(permissions=["ban"], description="Ban selected users…")
    def ban_users(self, request, queryset):
        return confirm_with_reason(
            self,
            request,
            queryset,
            title="Ban users",
            apply=lambda user, reason: services.user_ban(actor=request.user, user=user, reason=reason),
        )

    @admin.action(permissions=["ban"], description="Unban selected users…")
    def unban_users(self, request, queryset):
        return confirm_with_reason(
            self,
            request,
            queryset,
            title="Unban users",
            required=False,
            apply=lambda user, reason: services.user_unban(actor=request.user, user=user, reason=reason),
        )


@admin.register(Device)
class DeviceAdmin(LargeTableMixin, ReadOnlyMixin, ObjectActionsMixin, admin.ModelAdmin):
    """Login sessions (contract 11). Moderators who may ban may also sign a device out, with a
    reason, in the audit log (moderation.services.device_revoke). Push tokens are not shown."""

    list_display = ("__str__", "user", "platform", "app_version", "push_provider", "created_at", "last_seen_at")
    list_select_related = ("user",)
    list_filter = ("platform", "push_provider")
    search_fields = ("user__username", "name")
    ordering = ("-last_seen_at", "-pk")
    fields = ("user", "name", "platform", "app_version", "push_provider", "call_push", "created_at", "last_seen_at")
    actions = ["revoke_devices"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.ban_user")

    def get_object_actions(self, obj):
        return [("revoke_devices", "Sign out…")]

    @admin.action(permissions=["revoke"], description="Sign out selected devices…")
    def revoke_devices(self, request, queryset):
        return confirm_with_reason(
            self,
            request,
            queryset.select_related("user"),
            title="Sign out devices",
            apply=lambda device, reason: services.device_revoke(actor=request.user, device=device, reason=reason),
        )
