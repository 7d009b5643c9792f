"""Presence and status: whether a user is online (kept by the socket registry in presence.registry)
and the status they chose, and telling their watchers (contact_status)."""

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from accounts.models import Status, User
from accounts.serializers import presence_data
from contacts.selectors import presence_watcher_ids
from contacts.serializers import contact_status_data
from realtime import events


def users_reset_presence() -> int:
    """Marks every online user offline (recovery after an outage); returns how many were online.

    Sends no contact_status: clients reconnect after an outage and read statuses afresh.
    """
    return User.objects.filter(is_online=True).update(is_online=False, last_online=timezone.now())


def _notify_contact_status(user: User) -> None:
    """To the watchers who may see the user's presence; the others hear nothing (contract 16)."""
    data = contact_status_data(user, presence_data(user))
    events.record(events.Event(presence_watcher_ids(user.pk), "contact_status", data))


@transaction.atomic
def user_status_set(*, user: User, status: Status, custom_message: str | None = None) -> User:
    """The WebSocket status_update: stores the chosen status and message, tells the watchers."""
    user = User.objects.select_for_update().get(pk=user.pk)
    user.chosen_status = status
    fields = ["chosen_status"]
    if custom_message is not None:
        user.status_message = custom_message
        fields.append("status_message")
    user.save(update_fields=fields)
    _notify_contact_status(user)
    return user


@transaction.atomic
def user_presence_apply(*, user_id: int, count_sockets: Callable[[int], int]) -> None:
    """Brings User.is_online in line with the live socket count (read under the row lock, so
    concurrent connects and disconnects settle on the truth) and tells the watchers."""
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        return
    online = count_sockets(user_id) > 0
    if online == user.is_online:
        return
    shown_before = user.status
    user.is_online = online
    fields = ["is_online"]
    if not online:
        user.last_online = timezone.now()
        fields.append("last_online")
    user.save(update_fields=fields)
    if user.status != shown_before:  # an invisible user's sockets are nobody's business
        _notify_contact_status(user)
