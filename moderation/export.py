"""Everything stored about a user, for data-access requests (`manage.py export_user`).

Each section is a function of the user; big ones (messages) are generators, written out as they
are read.
"""

from django.db.models import Q
from django.utils import timezone
from social_django.models import UserSocialAuth

from calls.models import Call
from chat.models import Membership, Message
from contacts.models import Contact
from imserver.api import format_id
from media.models import Media
from moderation.models import Report, target_label


def profile(user):
    return {
        "user_id": str(user.pk),
        "username": user.username,
        "email": user.email,
        "nickname": user.nickname,
        "status_message": user.status_message,
        "avatar_file": user.avatar or None,
        "chosen_status": user.chosen_status,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
        "last_online": user.last_online,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_banned": user.is_banned,
        "banned_at": user.banned_at,
        "ban_reason": user.ban_reason,
    }


def social_accounts(user):
    return [
        {"provider": link.provider, "uid": link.uid, "created": link.created}
        for link in UserSocialAuth.objects.filter(user=user).order_by("pk")
    ]


def contacts(user):
    return [
        {
            "user_id": str(contact.user_id),
            "username": contact.user.username,
            "remark": contact.remark,
            "created_at": contact.created_at,
        }
        for contact in Contact.objects.filter(owner=user).select_related("user").order_by("pk")
    ]


def memberships(user):
    rows = Membership.objects.filter(user=user).select_related("conversation__group").order_by("pk")
    return [
        {
            "conversation_id": format_id("c", m.conversation_id),
            "type": m.conversation.type,
            "group_id": format_id("g", m.conversation.group.pk) if m.conversation.type == "group" else None,
            "group_name": m.conversation.group.name if m.conversation.type == "group" else None,
            "peer_id": str(m.peer_id) if m.peer_id else None,
            "role": m.role,
            "joined_at": m.joined_at,
        }
        for m in rows
    ]


def messages(user):
    for message in Message.objects.filter(sender=user).order_by("pk").iterator(chunk_size=2000):
        yield {
            "message_id": format_id("m", message.pk),
            "conversation_id": format_id("c", message.conversation_id),
            "type": message.type,
            "content": message.content,
            "caption": message.caption,
            "status": message.status,
            "created_at": message.created_at,
            "updated_at": message.updated_at,
        }


def reports_made(user):
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


def uploads(user):
    return [
        {
            "media_id": media.public_id,
            "type": media.kind,
            "filename": media.filename,
            "content_type": media.content_type,
            "size": media.size,
            "stored_as": media.file,
            "attached": media.attached_at is not None,
            "created_at": media.created_at,
        }
        for media in Media.objects.filter(owner=user).order_by("pk")
    ]


def calls(user):
    return [
        {
            "call_id": f"call{call.pk}",
            "caller_id": str(call.caller_id),
            "callee_id": str(call.callee_id),
            "type": call.type,
            "status": call.status,
            "duration": call.duration,
            "created_at": call.created_at,
        }
        for call in Call.objects.filter(Q(caller=user) | Q(callee=user)).order_by("pk")
    ]


SECTIONS = [
    ("profile", profile),
    ("social_accounts", social_accounts),
    ("contacts", contacts),
    ("memberships", memberships),
    ("messages", messages),
    ("reports_made", reports_made),
    ("media", uploads),
    ("calls", calls),
]


def user_export(user):
    """{section: data} with `exported_at` first; sections may be generators."""
    return {"exported_at": timezone.now(), **{name: section(user) for name, section in SECTIONS}}
