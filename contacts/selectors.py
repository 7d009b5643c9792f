from contacts.models import Contact


def contact_watcher_ids(user_id):
    """Ids of the users who have user_id in their contacts (the audience of contact_status)."""
    return list(Contact.objects.filter(user_id=user_id).values_list("owner_id", flat=True))
