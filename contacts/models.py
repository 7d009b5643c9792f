from django.conf import settings
from django.db import models


class Contact(models.Model):
    """One entry of `owner`'s address book (one-way)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contacts")
    # Indexed as a foreign key: "who has this user as a contact" is the audience of contact_status.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    remark = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the index of the contact list (owner, ordered by id) and of remark lookups.
            models.UniqueConstraint(fields=["owner", "user"], name="contacts_contact_owner_user"),
        ]


class Block(models.Model):
    """`owner` blocked `user` (contract 16). Every entry point asks contacts.selectors about it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks")
    # Indexed as a foreign key: "who blocked this user" (search, group invites, typing audiences).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the index of the block list (owner, newest first) and of "did A block B".
            models.UniqueConstraint(fields=["owner", "user"], name="contacts_block_owner_user"),
        ]


class Audience(models.TextChoices):
    EVERYONE = "everyone"
    CONTACTS = "contacts"  # the users in the setting owner's own contact list
    NOBODY = "nobody"


class Reach(models.TextChoices):
    """Who may message, call or add to groups: Audience without "nobody"."""

    EVERYONE = "everyone"
    CONTACTS = "contacts"


class Preview(models.TextChoices):
    FULL = "full"
    SENDER = "sender"
    NONE = "none"


class PrivacySettings(models.Model):
    """A user's privacy settings (contract 16). The defaults here are the contract's; an account
    is made with the operators' defaults of that moment (settings.PRIVACY_DEFAULTS, see
    contacts.services.privacy_settings_create), and a user without a row has the contract's."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="privacy"
    )
    last_seen = models.CharField(max_length=8, choices=Audience.choices, default=Audience.EVERYONE)
    who_can_message = models.CharField(max_length=8, choices=Reach.choices, default=Reach.EVERYONE)
    who_can_call = models.CharField(max_length=8, choices=Reach.choices, default=Reach.EVERYONE)
    who_can_add_to_groups = models.CharField(max_length=8, choices=Reach.choices, default=Reach.EVERYONE)
    send_read_receipts = models.BooleanField(default=True)
    send_typing = models.BooleanField(default=True)
    notification_preview = models.CharField(max_length=8, choices=Preview.choices, default=Preview.FULL)
