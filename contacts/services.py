from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from accounts.selectors import visible_users
from accounts.serializers import presence_data
from contacts.models import Block, Contact, PrivacySettings
from contacts.selectors import contact_of, presence_hidden_data, presence_watcher_ids, privacy_settings_of
from contacts.serializers import contact_status_data
from imserver.api import Conflict
from realtime import events
from realtime.cache import USERS


def contact_add(*, owner: User, user_id: int | None, remark: str = "") -> Contact:
    if user_id == owner.pk:
        raise ValidationError({"user_id": ["You cannot add yourself as a contact."]})
    user = visible_users().filter(pk=user_id).first()
    if user is None:
        raise NotFound("User not found")
    try:
        with transaction.atomic():
            return Contact.objects.create(owner=owner, user=user, remark=remark)
    except IntegrityError:
        raise Conflict("Already a contact") from None


def contact_update(*, owner: User, user_id: int, remark: str) -> Contact:
    contact = contact_of(owner=owner, user_id=user_id)
    contact.remark = remark
    contact.save(update_fields=["remark"])
    return contact


def contact_remove(*, owner: User, user_id: int) -> None:
    contact_of(owner=owner, user_id=user_id).delete()


def _notify_block(owner, user_id, blocked):
    events.invalidate_on_commit(USERS, [owner.pk, user_id])  # both sides' typing audiences
    data = {"user_id": str(user_id), "blocked": blocked}
    events.record(events.Event([owner.pk], "block_update", data))


@transaction.atomic
def block_create(*, owner: User, user_id: int) -> None:
    """owner blocks user_id (idempotent); owner's devices get block_update when it is new."""
    if user_id == owner.pk:
        raise ValidationError({"user_id": ["You cannot block yourself."]})
    # Banned users too: a block outlives a ban that may be lifted.
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise NotFound("User not found")
    # The owner's row serializes their blocks, so the cap holds under concurrent requests.
    User.objects.select_for_update(no_key=True).filter(pk=owner.pk).first()
    if Block.objects.filter(owner=owner, user=user).exists():
        return
    if Block.objects.filter(owner=owner).count() >= settings.BLOCKS_MAX:
        raise Conflict(f"You can block at most {settings.BLOCKS_MAX} users")
    Block.objects.create(owner=owner, user=user)
    _notify_block(owner, user.pk, True)


@transaction.atomic
def block_delete(*, owner: User, user_id: int) -> None:
    """owner unblocks user_id (idempotent); owner's devices get block_update when it was blocked."""
    if not User.objects.filter(pk=user_id, is_active=True).exists():
        raise NotFound("User not found")
    deleted, _ = Block.objects.filter(owner=owner, user_id=user_id).delete()
    if deleted:
        _notify_block(owner, user_id, False)


def privacy_settings_create(user: User) -> PrivacySettings:
    """A new account's settings: the operators' defaults of this moment (contacts.apps connects it)."""
    return PrivacySettings.objects.create(user=user, **settings.PRIVACY_DEFAULTS)


@transaction.atomic
def privacy_settings_update(*, user: User, **changes: object) -> PrivacySettings:
    """Stores the changes. A new last_seen tells the watchers it moves in or out: those who no
    longer may see the user's presence get one last contact_status showing them offline (then no
    more), those who now may get the current one."""
    user = User.objects.select_for_update(no_key=True).get(pk=user.pk)  # one change at a time, fresh presence
    privacy = privacy_settings_of(user)
    watchers_before = set(presence_watcher_ids(user.pk))
    for field, value in changes.items():
        setattr(privacy, field, value)
    privacy.save()
    watchers_after = set(presence_watcher_ids(user.pk))
    if watchers_before != watchers_after:
        events.record(
            events.Event(
                watchers_before - watchers_after,
                "contact_status",
                contact_status_data(user, presence_hidden_data(user)),
            ),
            events.Event(
                watchers_after - watchers_before, "contact_status", contact_status_data(user, presence_data(user))
            ),
        )
    events.invalidate_on_commit(USERS, [user.pk])
    return privacy


def erase_user(user: User) -> None:
    """An erased account leaves every address book and block list, and its own go (privacy.services.user_delete)."""
    Contact.objects.filter(Q(owner=user) | Q(user=user)).delete()
    Block.objects.filter(Q(owner=user) | Q(user=user)).delete()
