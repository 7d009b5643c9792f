"""Reads of address books, blocks and privacy settings. Whether one user may reach another
(message, call, add to a group, find, see typing) is decided here and nowhere else (contract 16);
every answer is read from the database at the time of asking, so a block or a setting takes effect
on every process with the next request."""

from collections.abc import Iterable

from django.db import connection
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce, Lower, NullIf
from rest_framework.exceptions import NotFound

from accounts.models import Status, User
from accounts.selectors import users_search
from accounts.serializers import presence_data
from contacts.models import Audience, Block, Contact, PrivacySettings, Reach
from imserver.pagination import paginate

# --- Presence as others see it (contract 16) ------------------------------------------------
# `last_seen` governs status and last_online; a block also hides status_message. Both are read from
# the database when asked, so a change holds for the next request and the next event everywhere.


def _blocks(subject, viewer):
    """subject blocked viewer (each an id or an OuterRef)."""
    return Exists(Block.objects.filter(owner_id=subject, user_id=viewer))


def _hides_last_seen(subject, viewer):
    """subject's last_seen keeps their presence from viewer: "nobody", or "contacts" and viewer is
    not in subject's contact list (each an id or an OuterRef)."""
    nobody = Exists(PrivacySettings.objects.filter(user_id=subject, last_seen=Audience.NOBODY))
    contacts_only = Exists(PrivacySettings.objects.filter(user_id=subject, last_seen=Audience.CONTACTS))
    return nobody | (contacts_only & ~Exists(Contact.objects.filter(owner_id=subject, user_id=viewer)))


def _presence_hidden(subject, viewer):
    return _blocks(subject, viewer) | _hides_last_seen(subject, viewer)


def presence_seen_by(*, viewer_id: int, users: Iterable[User]) -> dict[int, dict]:
    """user id -> {status, status_message, last_online} as viewer_id may see them, for every
    profile, contact, group member and event that shows presence. One query for any number of users.

    A user who keeps last_seen from the viewer shows `offline` with `last_online: null`; one who
    blocked the viewer also shows an empty `status_message`. Users see their own presence.
    """
    users = list(users)
    others = {user.pk for user in users} - {viewer_id}
    rows = (
        User.objects.filter(pk__in=others)
        .annotate(
            blocked=_blocks(OuterRef("pk"), viewer_id),
            unseen=ExpressionWrapper(_hides_last_seen(OuterRef("pk"), viewer_id), output_field=BooleanField()),
        )
        .values_list("pk", "blocked", "unseen")
        if others
        else []
    )
    hidden = {pk: (blocked, unseen) for pk, blocked, unseen in rows}
    return {user.pk: _presence_shown(user, *hidden.get(user.pk, (False, False))) for user in users}


def _presence_shown(user: User, blocked: bool, unseen: bool) -> dict:
    shown = presence_data(user)
    if blocked or unseen:
        shown.update(status=Status.OFFLINE, last_online=None)
    if blocked:
        shown["status_message"] = ""
    return shown


def presence_hidden_data(user: User) -> dict:
    """The presence a viewer outside user's last_seen sees (the last contact_status it gets)."""
    return _presence_shown(user, blocked=False, unseen=True)


def presence_watcher_ids(user_id: int) -> list[int]:
    """The audience of user_id's contact_status: the users who have them in their contacts and may
    see their presence (not blocked by them, inside their last_seen). One query."""
    watchers = Contact.objects.filter(user_id=user_id).exclude(_presence_hidden(user_id, OuterRef("owner_id")))
    return list(watchers.values_list("owner_id", flat=True))


def contact_list(*, owner: User, limit: int, offset: int) -> tuple[int, list[Contact]]:
    """(total, contacts with their users), alphabetical by the name shown (remark or nickname)."""
    contacts = Contact.objects.filter(owner=owner)
    shown = Lower(Coalesce(NullIf(F("remark"), Value("")), NullIf(F("user__nickname"), Value("")), F("user__username")))
    return paginate(contacts.select_related("user"), order_by=(shown, "pk"), limit=limit, offset=offset)


def contact_of(*, owner: User, user_id: int) -> Contact:
    contact = Contact.objects.select_related("user").filter(owner=owner, user_id=user_id).first()
    if contact is None:
        raise NotFound("Contact not found")
    return contact


def export_sections(user: User) -> dict:
    """The address book's part of a data export (privacy.services.user_export)."""
    return {"contacts": _contacts(user)}


def _contacts(user: User) -> list[dict]:
    return [
        {
            "user_id": str(contact.user_id),
            "username": contact.user.username,
            "remark": contact.remark,
            "created_at": contact.created_at,
        }
        for contact in Contact.objects.filter(owner=user).select_related("user").order_by("pk")
    ]


def block_list(*, owner: User, limit: int, offset: int) -> tuple[int, list[Block]]:
    """(total, blocks with their users), newest first."""
    return paginate(
        Block.objects.filter(owner=owner).select_related("user"), order_by=("-pk",), limit=limit, offset=offset
    )


def privacy_settings_of(user: User) -> PrivacySettings:
    """The user's settings; the contract's defaults for an account that has no row."""
    return PrivacySettings.objects.filter(user=user).first() or PrivacySettings(user=user)


def _limited_to_contacts(setting: str, actor_id: int):
    """For the rows of a User queryset: they keep `setting` to their contacts and actor_id is not one."""
    restricted = PrivacySettings.objects.filter(user_id=OuterRef("pk"), **{setting: Audience.CONTACTS})
    return Exists(restricted) & ~Exists(Contact.objects.filter(owner_id=OuterRef("pk"), user_id=actor_id))


def refusing(*, actor_id: int, setting: str | None = None) -> Q:
    """A filter for User querysets: the users who blocked actor_id, or, with a setting
    (who_can_add_to_groups, ...), keep it to their contacts and do not have actor_id among them.

    An expression, not a list, so that the callers' own query applies it: `visible_users()
    .exclude(refusing(actor_id=me.pk))` finds no more rows and costs no more queries.
    """
    refused = Exists(Block.objects.filter(owner_id=OuterRef("pk"), user_id=actor_id))
    return refused | _limited_to_contacts(setting, actor_id) if setting else Q(refused)


# Plain SQL, made once per setting: the ORM's compilation of this query (three EXISTS) was more
# than half of a private send's CPU.
_REFUSAL_SQL = """
SELECT
    EXISTS (SELECT 1 FROM {block} WHERE owner_id = %(actor)s AND user_id = %(target)s),
    EXISTS (SELECT 1 FROM {block} WHERE owner_id = %(target)s AND user_id = %(actor)s),
    EXISTS (SELECT 1 FROM {privacy} WHERE user_id = %(target)s AND {setting} = %(contacts)s)
    AND NOT EXISTS (SELECT 1 FROM {contact} WHERE owner_id = %(target)s AND user_id = %(actor)s)
"""
_REFUSAL_BY_SETTING = {
    setting: _REFUSAL_SQL.format(
        block=Block._meta.db_table,
        privacy=PrivacySettings._meta.db_table,
        contact=Contact._meta.db_table,
        setting=PrivacySettings._meta.get_field(setting).column,
    )
    for setting in ("who_can_message", "who_can_call")
}


def _refusal(*, actor_id: int, target_id: int, setting: str, refused: str) -> str | None:
    """Why actor_id may not do what `setting` governs to target_id (a block either way counts),
    or None; one query."""
    with connection.cursor() as cursor:
        cursor.execute(
            _REFUSAL_BY_SETTING[setting], {"actor": actor_id, "target": target_id, "contacts": Reach.CONTACTS.value}
        )
        blocking, blocked, limited = cursor.fetchone()
    if blocking:
        return "You blocked this user; unblock them first."
    if blocked or limited:
        return refused
    return None


def message_refusal(*, sender_id: int, recipient_id: int) -> str | None:
    """Why sender_id may not message recipient_id privately (start or send), or None."""
    return _refusal(
        actor_id=sender_id,
        target_id=recipient_id,
        setting="who_can_message",
        refused="This user does not accept messages from you.",
    )


def call_refusal(*, caller_id: int, callee_id: int) -> str | None:
    """Why caller_id may not call callee_id, or None (no incoming_call and no push then)."""
    return _refusal(
        actor_id=caller_id,
        target_id=callee_id,
        setting="who_can_call",
        refused="This user does not accept calls from you.",
    )


def users_search_for(*, searcher: User, query: str, limit: int, offset: int) -> tuple[int, list[User]]:
    """accounts' user search, without the users who blocked the searcher (they are not found)."""
    return users_search(query=query, limit=limit, offset=offset, hidden=refusing(actor_id=searcher.pk))


def blocked_between(a_id: int, b_id: int) -> bool:
    """Whether either user blocked the other."""
    return Block.objects.filter(Q(owner_id=a_id, user_id=b_id) | Q(owner_id=b_id, user_id=a_id)).exists()


def not_refusing_ids(*, actor_id: int, user_ids: Iterable[int]) -> set[int]:
    """Those of user_ids who have not blocked actor_id, in one query: who hears actor's typing,
    whose mention_count and mention pushes actor's mentions reach."""
    return set(User.objects.filter(pk__in=user_ids).exclude(refusing(actor_id=actor_id)).values_list("pk", flat=True))


def typing_hidden_from(typer_id: int) -> set[int] | None:
    """Whom typer_id's typing is never shown to (contract 14, 16): None (nobody sees it) if the
    typer turned send_typing off, else the users who blocked the typer or whom the typer blocked.
    chat.typing keeps the answer per process until a block or the setting changes."""
    if PrivacySettings.objects.filter(user_id=typer_id, send_typing=False).exists():
        return None
    pairs = Block.objects.filter(Q(owner_id=typer_id) | Q(user_id=typer_id)).values_list("owner_id", "user_id")
    return {user_id if owner_id == typer_id else owner_id for owner_id, user_id in pairs}


_READ_RECEIPTS_OFF = (
    f"SELECT EXISTS (SELECT 1 FROM {PrivacySettings._meta.db_table} WHERE user_id = %s AND NOT send_read_receipts)"
)


def sends_read_receipts(user_id: int) -> bool:
    """Plain SQL: every read in a private conversation asks it."""
    with connection.cursor() as cursor:
        cursor.execute(_READ_RECEIPTS_OFF, [user_id])
        return not cursor.fetchone()[0]
