from django.db.models import F, Value
from django.db.models.functions import Coalesce, Lower, NullIf
from rest_framework.exceptions import NotFound

from accounts.models import User
from contacts.models import Contact
from imserver.pagination import paginate


def contact_watcher_ids(user_id: int) -> list[int]:
    """Ids of the users who have user_id in their contacts (the audience of contact_status)."""
    return list(Contact.objects.filter(user_id=user_id).values_list("owner_id", flat=True))


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
