import re

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from imserver.namesearch import NameSearchField, update_fields_with_document

# Deleting an account renames it deleted-<id> (privacy.services.user_delete): no other account
# may hold such a name, in any case, or that deletion would fail on the unique username.
DELETED_USERNAME_RE = re.compile(r"^deleted-[0-9]+$", re.IGNORECASE)
DELETED_USERNAME_RESERVED = "Usernames of the form deleted-<number> are reserved."


def deleted_username(user_id):
    return f"deleted-{user_id}"


class Status(models.TextChoices):
    ONLINE = "online"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"


class User(AbstractUser):
    """An imserver account. `username` is unique case-insensitively; so is a non-empty `email`."""

    nickname = models.CharField(max_length=64, blank=True)
    # Storage name of the re-encoded avatar image ("" for none).
    avatar = models.CharField(max_length=255, blank=True)
    status_message = models.CharField(max_length=140, blank=True)
    # What the user chose to show while connected; "offline" here means invisible.
    chosen_status = models.CharField(max_length=8, choices=Status.choices, default=Status.ONLINE)
    # Maintained by realtime presence: true while at least one WebSocket is open on any process.
    is_online = models.BooleanField(default=False)
    last_online = models.DateTimeField(null=True, blank=True)
    # Part of every token; bumping it revokes all of the user's tokens at once.
    token_version = models.PositiveIntegerField(default=0)
    # The user proved they read mail at `email` (a mailed code, or a provider that vouches for it);
    # only then may an OAuth identity with that address log in to this account (contract 23).
    email_verified = models.BooleanField(default=False)
    is_banned = models.BooleanField(default=False)
    banned_at = models.DateTimeField(null=True, blank=True)
    ban_reason = models.TextField(blank=True)
    # What users/search finds a user by (imserver/namesearch.py): made again whenever a name is
    # saved, so an erasure's new name leaves nothing of the old one.
    search_document = NameSearchField(sources=("username", "nickname"))

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
            models.UniqueConstraint(Lower("email"), condition=~Q(email=""), name="accounts_user_email_ci_unique"),
        ]
        indexes = [
            # "Online now" (admin index, imstats) counts from this small index, not the whole table.
            models.Index(fields=["is_online"], condition=Q(is_online=True), name="accounts_user_online"),
        ]
        # Moderators ban and unban (moderation.services) but cannot otherwise change users.
        permissions = [("ban_user", "Can ban and unban users")]

    def __str__(self):
        return self.username

    def save(self, *args, update_fields=None, **kwargs):
        super().save(*args, update_fields=update_fields_with_document(User, update_fields), **kwargs)

    def get_session_auth_hash(self):
        """Django checks this against the session's on every request: with token_version in it,
        whatever revokes the user's tokens (a ban, a password change) also ends their admin sessions."""
        return f"{super().get_session_auth_hash()}:{self.token_version}"

    def clean(self):
        # Model forms (the admin's add and change forms) run this; a tombstone keeps its own name.
        super().clean()
        if DELETED_USERNAME_RE.match(self.username) and self.username.lower() != deleted_username(self.pk):
            raise ValidationError({"username": DELETED_USERNAME_RESERVED})

    @property
    def display_name(self):
        return self.nickname or self.username

    @property
    def status(self):
        """The status others see: the chosen one while connected, else offline."""
        return self.chosen_status if self.is_online else Status.OFFLINE


class PasswordResetCode(models.Model):
    """A one-time code mailed for a password reset; only its hash is stored. Each requester (an
    address) has its own live code: a new request replaces only the code asked for from the same
    address, so another party's requests never void the owner's; using any code voids them all."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_reset_codes")
    # Who asked: the client address, and the signed-in user when the request carried a token.
    requested_from = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    code_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The confirm step looks up a user's newest live code.
        indexes = [models.Index(fields=["user", "-created_at"], name="accounts_reset_user_recent")]


class PasswordResetGuess(models.Model):
    """A wrong reset code given for an account, and the address it came from. The confirm step's
    guess budget counts these over a code's lifetime, per address and for all addresses together;
    a wrong guess voids no code (another party's guesses never burn the owner's)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        # The confirm step reads a user's guesses of the last code lifetime and drops older ones.
        indexes = [models.Index(fields=["user", "created_at"], name="accounts_reset_guess_recent")]


class EmailConfirmation(models.Model):
    """The code mailed to confirm a user's email (contract 23): one live code a user, only its hash
    stored; a resend replaces it, a confirmation deletes it."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="email_confirmation")
    code_hash = models.CharField(max_length=128)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)


class Device(models.Model):
    """One login session (one refresh-token family) and optionally one push target (contract 11, 12).

    Revoking a device deletes its row: its tokens name it and stop working at their next use, and
    its push registration goes with it.
    """

    class Platform(models.TextChoices):
        IOS = "ios"
        ANDROID = "android"
        WEB = "web"
        DESKTOP = "desktop"

    class Provider(models.TextChoices):
        FCM = "fcm"
        APNS = "apns"

    class CallPush(models.TextChoices):
        VOIP = "voip"
        ALERT = "alert"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=64, blank=True)
    platform = models.CharField(max_length=8, choices=Platform.choices, blank=True)
    app_version = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    push_provider = models.CharField(max_length=8, choices=Provider.choices, blank=True)
    push_token = models.TextField(blank=True)
    voip_token = models.TextField(blank=True)
    # sha256 of the tokens: a token belongs to one device at a time (tokens are up to 4 KiB, too
    # long for a unique index of their own).
    push_token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    voip_token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    call_push = models.CharField(max_length=8, choices=CallPush.choices, default=CallPush.VOIP)
    push_sandbox = models.BooleanField(default=False)

    class Meta:
        # A user's devices, most recently seen first (the list, the 50-device cap).
        indexes = [models.Index(fields=["user", "-last_seen_at"], name="accounts_device_user_seen")]

    def __str__(self):
        return f"d{self.pk} of {self.user_id} ({self.platform or 'unknown'} {self.name})"
