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
