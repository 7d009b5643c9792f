from django.db import IntegrityError, transaction
from django.db.models import Q
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import User
from accounts.selectors import visible_users
from contacts.models import Contact
from contacts.selectors import contact_of
from imserver.api import Conflict


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


def erase_user(user: User) -> None:
    """An erased account leaves every address book, and its own goes (privacy.services.user_delete)."""
    Contact.objects.filter(Q(owner=user) | Q(user=user)).delete()
