from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Conversation(models.Model):
    class Type(models.TextChoices):
        PRIVATE = "private"
        GROUP = "group"

    type = models.CharField(max_length=8, choices=Type.choices)
    # "<lower user id>:<higher user id>" for private conversations: one per pair, enforced here.
    private_key = models.CharField(max_length=40, unique=True, null=True, blank=True)
    # The seq of the newest message. Sends lock this row to take the next seq, so seqs are
    # gapless and committed in order (see Message.seq).
    last_seq = models.BigIntegerField(default=0)
    last_message = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Orders the conversation list (newest activity first).
    last_activity_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"c{self.pk} ({self.type})"


class Notify(models.TextChoices):
    ALL = "all"
    MENTIONS = "mentions"
    NONE = "none"


class Membership(models.Model):
    """A user's place in a conversation: the one source of truth for who is in a group too."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    # Indexed as a foreign key: the conversation list starts from the caller's memberships.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    # Private conversations: the other participant, so the list joins it without a subquery.
    peer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # The read pointer: the seq of the newest message this member has read. Only moves forward.
    last_read_seq = models.BigIntegerField(default=0)
    # The read pointer the other members see, which makes their messages "read": last_read_seq,
    # except that in a private conversation it stays put while the member has send_read_receipts
    # off (contract 16).
    receipt_seq = models.BigIntegerField(default=0)
    # The delivered pointer (contract 19): the seq of the newest message the member's app has
    # stored on some device. Only moves forward, and never stays behind last_read_seq (a read
    # message was delivered), so it is never behind receipt_seq either.
    delivered_seq = models.BigIntegerField(default=0)
    joined_at = models.DateTimeField(default=timezone.now)
    # The member's own settings of the conversation (contract 17). A mute ends at muted_until
    # (none: until unmuted) by itself: whether it is on is evaluated at read time, never swept.
    muted = models.BooleanField(default=False)
    muted_until = models.DateTimeField(null=True, blank=True)
    notify = models.CharField(max_length=8, choices=Notify.choices, default=Notify.ALL)
    pinned_at = models.DateTimeField(null=True, blank=True)
    # Hidden while the conversation's last_seq is at most this (until its next new message).
    hidden_seq = models.BigIntegerField(null=True, blank=True)
    # Cleared (contract 15): the messages up to this seq are hidden for this member for good.
    # Not hidden_seq, which hides the conversation from the list until its next message and is
    # undone by unhiding it.
    cleared_seq = models.BigIntegerField(default=0)
    # Whether the member ever hid a message of this conversation for themselves (contract 15,
    # chat.services.message_hide; never unset): history pages of the others skip the hidden-rows
    # check, half of a page's planning and execution in PostgreSQL (docs/performance.md).
    hides_messages = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [
            # Also the index of membership checks (conversation, user).
            models.UniqueConstraint(fields=["conversation", "user"], name="chat_membership_conversation_user"),
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(role="owner"), name="chat_membership_one_owner"
            ),
        ]
        indexes = [
            # A message's read status needs the two lowest receipt pointers of its conversation.
            models.Index(fields=["conversation", "receipt_seq"], name="chat_membership_receipts"),
            # ... and its delivered status the two lowest delivered pointers.
            models.Index(fields=["conversation", "delivered_seq"], name="chat_membership_delivered"),
        ]

    def __str__(self):
        return f"{self.user_id} in c{self.conversation_id} ({self.role})"


class Message(models.Model):
    class Type(models.TextChoices):
        TEXT = "text"
        IMAGE = "image"
        VIDEO = "video"
        AUDIO = "audio"
        FILE = "file"
        CALL = "call"

    class Status(models.TextChoices):
        # "delivered" and "read" are derived from the members' pointers, never stored.
        SENT = "sent"
        REMOVED = "removed"

    class RemovedBy(models.TextChoices):
        SENDER = "sender"  # a recall by its sender
        ADMIN = "admin"  # a recall by the group's owner or an admin
        MODERATOR = "moderator"

    # Not indexed alone: (conversation, seq) below is the index of every lookup by conversation.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, db_index=False, related_name="messages")
    # Position in the conversation: 1, 2, 3... with no gaps, assigned under the conversation's
    # row lock, so a message with seq N commits after every message with a smaller seq. Paging
    # with `after` by seq therefore never misses a message committed late by another sender.
    seq = models.BigIntegerField()
    # Indexed by chat_message_sender_recent below, not on its own.
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.TEXT)
    content = models.TextField()
    caption = models.TextField(blank=True)
    # Image/video/audio/file messages: the upload they carry (content holds its media_id).
    media = models.ForeignKey("media.Media", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    temp_id = models.CharField(max_length=64, null=True, blank=True)
    # Call messages: {call_id, type, status, duration} of the finished call they record. A
    # finished call never changes, so the message keeps a copy and chat needs no join to calls.
    call = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SENT)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(null=True, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)  # the latest edit (contract 15)
    # Who removed it; null while it is not removed (the contract's null, and no default the send's
    # plain INSERT would have to name).
    removed_by = models.CharField(max_length=9, choices=RemovedBy.choices, null=True, blank=True)
    # The message this one answers (contract 18), in the same conversation. Its preview is
    # rendered from it whenever this one is read, so its edits and its removal show.
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The user ids mentioned, as the message shows them; Mention rows index them for counting.
    mentions = models.JSONField(default=list, blank=True)
    mentions_all = models.BooleanField(default=False)
    # A forwarded copy: who wrote the original and when (kept as they were when forwarded, so a
    # later recall of the original does not touch the copy).
    forwarded_sender_name = models.CharField(max_length=64, null=True, blank=True)
    forwarded_created_at = models.DateTimeField(null=True, blank=True)
    # How many reactions it has, kept by chat.reactions in the reaction's transaction (never
    # below the rows: a reaction deleted by a cascade leaves it higher, which costs a look only):
    # history pages read chat_reaction only for messages that have some (docs/performance.md).
    # A database default, so the send's plain INSERT need not name it.
    reaction_count = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            # Also the index of history pages and unread counts: (conversation, seq) ranges.
            models.UniqueConstraint(fields=["conversation", "seq"], name="chat_message_conversation_seq"),
            # temp_id idempotency: one message per sender and temp_id in a conversation.
            models.UniqueConstraint(
                fields=["conversation", "sender", "temp_id"],
                condition=Q(temp_id__isnull=False),
                name="chat_message_temp_id",
            ),
        ]
        indexes = [
            # A user's messages, newest first (admin, reports, data export), without sorting them all;
            # also serves the sender foreign key.
            models.Index(fields=["sender", "-id"], name="chat_message_sender_recent"),
            # Messages of the last day/week (admin index, imstats) and the admin's date filter.
            models.Index(fields=["created_at"], name="chat_message_created_at"),
        ]
        # Moderators remove messages (chat.services.message_remove) but never edit or delete them.
        permissions = [("remove_message", "Can remove messages")]

    def __str__(self):
        return f"m{self.pk} in c{self.conversation_id}"


class MessageEdit(models.Model):
    """What a message said before an edit (contract 15): the edit history moderators see."""

    # Indexed as a foreign key: a message's history, and the edit count checked on each edit.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="edits")
    content = models.TextField()  # the text before this edit (a text message)
    caption = models.TextField(blank=True)  # the caption before this edit (a media message)
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    edited_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"edit of m{self.message_id} at {self.edited_at:%Y-%m-%d %H:%M}"


class MessageHidden(models.Model):
    """A message a member deleted for themselves (contract 15): gone from their view only."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Indexed as a foreign key: deleting a message (a conversation) deletes its hides.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            # Also the index of "hidden for this user?" (history, list, unread, search).
            models.UniqueConstraint(fields=["user", "message"], name="chat_messagehidden_user_message"),
        ]


class Mention(models.Model):
    """A user a message mentions by id: what mention_count and unread mentions count (the
    message's own `mentions` is what it shows). `@all` is Message.mentions_all, with no rows."""

    # Indexed by the unique constraint below (message first); the user by its foreign key index.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            # Also the index of "does this unread message mention me" (message, user).
            models.UniqueConstraint(fields=["message", "user"], name="chat_mention_message_user"),
        ]


class Reaction(models.Model):
    """One user's emoji on a message (contract 18)."""

    # Indexed by the unique constraint below (message first); the user by its foreign key index.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # One emoji grapheme (chat.reactions.emoji_valid); the longest ZWJ sequences are ~10 code points.
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One reaction per user and emoji; also the index of a page's reactions (message_id IN ...).
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="chat_reaction_message_user_emoji"),
        ]

    def __str__(self):
        return f"{self.emoji} by {self.user_id} on m{self.message_id}"
