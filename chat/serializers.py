"""Conversation and message shapes: `*_data` build them (REST and WebSocket alike), `*Out`
document them for the OpenAPI schema, `*In` validate request bodies."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from chat.models import Conversation, Message, Notify
from imserver.api import StrictCharField, StrictSerializer, format_id
from media.serializers import MediaOut, media_data
from media.storage import public_url

# --- Input ----------------------------------------------------------------------------------


class ConversationCreateIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=Conversation.Type.choices)
    target_id = serializers.CharField(required=False, max_length=32)
    name = serializers.CharField(required=False, max_length=64)
    members = serializers.ListField(child=serializers.CharField(max_length=32), required=False, max_length=1000)

    def validate(self, data):
        if data["type"] == Conversation.Type.PRIVATE and not data.get("target_id"):
            raise serializers.ValidationError({"target_id": ["Required for a private conversation."]})
        if data["type"] == Conversation.Type.GROUP and not data.get("name", "").strip():
            raise serializers.ValidationError({"name": ["Required for a group conversation."]})
        return data


class ConversationListParams(serializers.Serializer):
    type = serializers.ChoiceField(choices=["private", "group", "all"], required=False)
    include_hidden = serializers.BooleanField(required=False, default=False)


MAX_MUTE = timedelta(days=365)


class ConversationSettingsIn(StrictSerializer):
    muted = serializers.BooleanField(required=False)
    muted_until = serializers.DateTimeField(required=False, allow_null=True)
    notify = serializers.ChoiceField(choices=Notify.choices, required=False)
    pinned = serializers.BooleanField(required=False)
    hidden = serializers.BooleanField(required=False)

    def validate_muted_until(self, value):
        now = timezone.now()
        if value is not None and not now < value <= now + MAX_MUTE:
            raise serializers.ValidationError("Must be in the future and at most a year ahead.")
        return value

    def validate(self, data):
        if data.get("muted") is False and data.get("muted_until") is not None:
            raise serializers.ValidationError({"muted_until": ["An unmuted conversation has no mute end."]})
        return data


CAPTION_MAX_LENGTH = 2000


def _check_text(content):
    """A text message's content, on send and on edit: 1 to MESSAGE_MAX_LENGTH characters."""
    if not content.strip():
        raise serializers.ValidationError({"content": ["Text messages cannot be empty."]})
    if len(content) > settings.MESSAGE_MAX_LENGTH:
        raise serializers.ValidationError(
            {"content": [f"Text messages are at most {settings.MESSAGE_MAX_LENGTH} characters."]}
        )


MAX_MENTIONS = 50


class MentionsField(serializers.ListField):
    """Mentioned user ids, and "all" (contract 18); chat.services.mentions_validated checks them."""

    child = StrictCharField(max_length=32)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_MENTIONS)
        kwargs.setdefault("help_text", 'Member user ids, and "all" (group owner and admins only); at most 50.')
        super().__init__(**kwargs)


class MessageSendIn(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=[t for t in Message.Type.values if t != Message.Type.CALL], default=Message.Type.TEXT
    )
    content = StrictCharField(trim_whitespace=False, allow_blank=True)
    temp_id = StrictCharField(max_length=64, required=False, allow_null=True)
    caption = serializers.CharField(max_length=CAPTION_MAX_LENGTH, required=False, allow_blank=True, allow_null=True)
    reply_to = StrictCharField(
        max_length=32, required=False, allow_null=True, help_text="A message id of this conversation."
    )
    mentions = MentionsField(required=False)

    def validate(self, data):
        if data["type"] == Message.Type.TEXT:
            _check_text(data["content"])
        return data


class MessageEditIn(serializers.Serializer):
    """`{content}` for a text message or `{caption}` for a media message (contract 15), with
    `mentions` checked as on send (contract 18); an edit without it keeps the message's mentions."""

    content = StrictCharField(trim_whitespace=False, allow_blank=True, required=False)
    caption = serializers.CharField(max_length=CAPTION_MAX_LENGTH, allow_blank=True, required=False)
    mentions = MentionsField(required=False)

    def validate(self, data):
        if len(data.keys() - {"mentions"}) != 1:
            raise serializers.ValidationError("Send either content (a text message) or caption (a media message).")
        if "content" in data:
            _check_text(data["content"])
        return data


class ForwardIn(StrictSerializer):
    message_ids = serializers.ListField(
        child=StrictCharField(max_length=32), min_length=1, max_length=20, help_text="1-20 message ids."
    )
    conversation_ids = serializers.ListField(
        child=StrictCharField(max_length=32), min_length=1, max_length=9, help_text="1-9 conversation ids."
    )
    # Each copy is stored with "<temp_id>/<n>" (chat.forwarding), within the 64 of a send's temp_id.
    temp_id = StrictCharField(max_length=60, required=False, allow_null=True)


class MessageHistoryParams(serializers.Serializer):
    before = serializers.CharField(required=False, max_length=32)
    after = serializers.CharField(required=False, max_length=32)


class MessageSearchParams(serializers.Serializer):
    q = serializers.CharField(max_length=100)
    conversation_id = serializers.CharField(required=False, max_length=32)
    sender_id = serializers.CharField(required=False, max_length=32)


class MarkReadIn(serializers.Serializer):
    message_id = serializers.CharField(max_length=32)


# --- Output ---------------------------------------------------------------------------------


REPLY_PREVIEW_CHARS = 100


def reply_to_data(original, status=None):
    """What a reply shows of the original, as the original is now: its preview is its text (up to
    100 characters), empty for media, calls and removed messages."""
    if original is None:
        return None
    removed = original.status == Message.Status.REMOVED
    text = original.type == Message.Type.TEXT and not removed
    return {
        "message_id": format_id("m", original.pk),
        "sender_id": str(original.sender_id),
        "sender_name": original.sender.display_name,
        "type": original.type,
        "preview": original.content[:REPLY_PREVIEW_CHARS] if text else "",
        "status": Message.Status.REMOVED if removed else (status or Message.Status.SENT),
    }


def forwarded_from_data(message):
    if message.forwarded_created_at is None:
        return None
    return {"sender_name": message.forwarded_sender_name, "created_at": message.forwarded_created_at}


def message_data(message, status=None, reactions=(), status_of=None):
    """A message as the REST API and `new_message` events carry it. `reactions` are the viewer's
    (chat.selectors.reactions_of); `status_of` (chat.selectors.read_horizon) gives the original a
    reply shows its read status."""
    removed = message.status == Message.Status.REMOVED
    original = message.reply_to if message.reply_to_id is not None else None
    original_status = None
    if original is not None and status_of is not None:
        original_status = status_of(original.seq, original.sender_id)
    return {
        "message_id": format_id("m", message.pk),
        "conversation_id": format_id("c", message.conversation_id),
        "sender_id": str(message.sender_id),
        "sender_name": message.sender.display_name,
        "content": "" if removed else message.content,
        "type": message.type,
        "caption": None if removed else (message.caption or None),
        "media": None if removed or message.media is None else media_data(message.media),
        "call": None if removed else message.call,
        "status": Message.Status.REMOVED if removed else (status or Message.Status.SENT),
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "edited_at": message.edited_at,
        "removed_by": message.removed_by if removed else None,
        "reply_to": reply_to_data(original, original_status),
        "mentions": [str(user_id) for user_id in message.mentions],
        "mentions_all": message.mentions_all,
        "forwarded_from": forwarded_from_data(message),
        "reactions": list(reactions),
    }


def message_status_data(*, message_id, conversation_id, status, updated_at, removed_by=None):
    """A `message_status` event (contract 7, 19): a message became delivered or read, or was
    removed (then with `removed_by`, contract 15)."""
    data = {
        "message_id": format_id("m", message_id),
        "conversation_id": format_id("c", conversation_id),
        "status": status,
        "updated_at": updated_at,
    }
    if status == Message.Status.REMOVED:
        data["removed_by"] = removed_by
    return data


def messages_data(messages, status_of, reactions):
    """A page of messages with their status (status_of from chat.selectors.read_horizon) and the
    viewer's reactions (chat.selectors.reactions_of)."""
    return messages_across_conversations_data(messages, {m.conversation_id: status_of for m in messages}, reactions)


def messages_across_conversations_data(messages, horizons, reactions):
    """Messages of several conversations (search results) with their status (horizons from
    chat.selectors.read_horizons) and the viewer's reactions."""
    rendered = []
    for m in messages:
        status_of = horizons[m.conversation_id]
        rendered.append(message_data(m, status_of(m.seq, m.sender_id), reactions.get(m.pk, ()), status_of))
    return rendered


def last_message_data(message):
    if message is None:
        return None
    removed = message.status == Message.Status.REMOVED
    return {
        "message_id": format_id("m", message.pk),
        "sender_id": str(message.sender_id),
        "sender_name": message.sender.display_name,
        "content": "" if removed else message.content,
        "type": message.type,
        "created_at": message.created_at,
    }


def conversation_settings_data(membership):
    """The caller's settings of a conversation, from a row of chat.selectors.conversation_list."""
    muted = membership.is_muted
    return {
        "muted": muted,
        "muted_until": membership.muted_until if muted else None,
        "notify": membership.notify,
        "pinned": membership.pinned_at is not None,
        "pinned_at": membership.pinned_at,
        "hidden": membership.is_hidden,
    }


def conversation_data(membership):
    """A conversation list item, from a membership row of chat.selectors.conversation_list (or
    conversation_item), with the last message the member sees."""
    conversation = membership.conversation
    if conversation.type == Conversation.Type.GROUP:
        group = conversation.group
        target_id, target_name, avatar = format_id("g", group.pk), group.name, public_url(group.avatar)
    else:
        peer = membership.peer
        target_id, target_name, avatar = str(peer.pk), membership.remark or peer.display_name, public_url(peer.avatar)
    return {
        "conversation_id": format_id("c", conversation.pk),
        "type": conversation.type,
        "target_id": target_id,
        "target_name": target_name,
        "avatar": avatar,
        "last_message": last_message_data(membership.shown_last_message),
        "unread_count": membership.unread_count,
        "mention_count": membership.mention_count,
        "created_at": conversation.created_at,
        "updated_at": conversation.last_activity_at,
        "settings": conversation_settings_data(membership),
    }


class LastMessageOut(serializers.Serializer):
    message_id = serializers.CharField()
    sender_id = serializers.CharField()
    sender_name = serializers.CharField()
    content = serializers.CharField(allow_blank=True)
    type = serializers.ChoiceField(choices=Message.Type.choices)
    created_at = serializers.DateTimeField()


class ConversationSettingsOut(serializers.Serializer):
    muted = serializers.BooleanField(help_text="Muted now (an elapsed mute is over).")
    muted_until = serializers.DateTimeField(allow_null=True, help_text="When the mute ends; null: until unmuted.")
    notify = serializers.ChoiceField(choices=Notify.choices)
    pinned = serializers.BooleanField()
    pinned_at = serializers.DateTimeField(allow_null=True)
    hidden = serializers.BooleanField(help_text="Left out of the list until the next new message.")


class ConversationOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    type = serializers.ChoiceField(choices=Conversation.Type.choices)
    target_id = serializers.CharField(help_text="The other user's id (private) or the group id (group).")
    target_name = serializers.CharField(help_text="Contact remark or nickname (private), group name (group).")
    avatar = serializers.URLField(allow_null=True)
    last_message = LastMessageOut(allow_null=True)
    unread_count = serializers.IntegerField(min_value=0)
    mention_count = serializers.IntegerField(
        min_value=0, help_text="Unread messages that mention the caller or all (not from a user the caller blocks)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="Time of the latest activity (orders the list).")
    settings = ConversationSettingsOut()


class ConversationListOut(serializers.Serializer):
    total = serializers.IntegerField()
    conversations = ConversationOut(many=True)


class CallRecordOut(serializers.Serializer):
    call_id = serializers.CharField()
    type = serializers.ChoiceField(choices=["audio", "video"])
    status = serializers.ChoiceField(choices=["ended", "rejected", "cancelled", "missed"])
    duration = serializers.IntegerField(min_value=0, help_text="Seconds from connection to end; 0 if never connected.")


class ReplyToOut(serializers.Serializer):
    message_id = serializers.CharField()
    sender_id = serializers.CharField()
    sender_name = serializers.CharField()
    type = serializers.ChoiceField(choices=Message.Type.choices)
    preview = serializers.CharField(
        allow_blank=True, help_text="The original's text now, up to 100 characters; empty for media and removed ones."
    )
    status = serializers.ChoiceField(
        choices=["sent", "delivered", "read", "removed"], help_text="The original's status now."
    )


class ForwardedFromOut(serializers.Serializer):
    sender_name = serializers.CharField(help_text="Who wrote the original.")
    created_at = serializers.DateTimeField(help_text="When the original was sent.")


class ReactionOut(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField(min_value=1)
    reacted = serializers.BooleanField(help_text="Whether the caller is among them.")


class MessageOut(serializers.Serializer):
    message_id = serializers.CharField()
    conversation_id = serializers.CharField()
    sender_id = serializers.CharField()
    sender_name = serializers.CharField()
    content = serializers.CharField(
        allow_blank=True, help_text="Text, the media_id of a media message, or the call_id of a call message."
    )
    type = serializers.ChoiceField(choices=Message.Type.choices)
    caption = serializers.CharField(allow_null=True)
    media = MediaOut(allow_null=True, help_text="The upload of an image/video/audio/file message.")
    call = CallRecordOut(allow_null=True, help_text="The finished call a call message records (sent by the caller).")
    status = serializers.ChoiceField(
        choices=["sent", "delivered", "read", "removed"],
        help_text="sent -> delivered (every other member has it) -> read, never back; or removed.",
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(allow_null=True)
    edited_at = serializers.DateTimeField(allow_null=True, help_text="The latest edit; null until edited.")
    removed_by = serializers.ChoiceField(
        choices=Message.RemovedBy.choices,
        allow_null=True,
        help_text="Who removed it (a recall by its sender, by a group's owner or admin, or a moderator); null "
        "while not removed.",
    )
    reply_to = ReplyToOut(allow_null=True, help_text="The message this one answers, rendered as it is now.")
    mentions = serializers.ListField(child=serializers.CharField(), help_text="The user ids it mentions.")
    mentions_all = serializers.BooleanField(help_text="Whether it mentions everyone (@all).")
    forwarded_from = ForwardedFromOut(allow_null=True, help_text="The original of a forwarded copy.")
    reactions = ReactionOut(many=True, help_text="Each emoji in the order first used (empty in events).")


class SentMessageOut(MessageOut):
    temp_id = serializers.CharField(allow_null=True, required=False)


class ForwardOut(serializers.Serializer):
    messages = SentMessageOut(many=True, help_text="The copies: for each target in order, each source in order.")


class ReactionsOut(serializers.Serializer):
    reactions = ReactionOut(many=True)


class MessagePageOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    messages = MessageOut(many=True)
    has_more = serializers.BooleanField()


class MessageSearchOut(serializers.Serializer):
    total = serializers.IntegerField(min_value=0)
    messages = MessageOut(many=True)


class MarkReadOut(serializers.Serializer):
    conversation_id = serializers.CharField()
    last_read_message_id = serializers.CharField()
    unread_count = serializers.IntegerField(min_value=0)


class UnreadOut(serializers.Serializer):
    badge = serializers.IntegerField(
        help_text="Conversations with unread messages that are not muted (the push badge)."
    )
    unread_conversations = serializers.IntegerField(help_text="Conversations with unread messages.")
    unread_messages = serializers.IntegerField(help_text="The sum of their unread_count.")
    mentions = serializers.IntegerField(help_text="Unread messages that mention the caller.")


class ConversationReadOut(serializers.Serializer):
    """The `conversation_read` event (contract 13), sent to the reader's own connections."""

    conversation_id = serializers.CharField()
    last_read_message_id = serializers.CharField()
    unread_count = serializers.IntegerField()
    mention_count = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
