from django.apps import AppConfig
from django.db.models.signals import post_save


def _account_created(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from contacts.services import privacy_settings_create

        privacy_settings_create(instance)


class ContactsConfig(AppConfig):
    name = "contacts"

    def ready(self):
        # Every way an account is made (register, OAuth, createsuperuser, the admin) gets the
        # operators' privacy defaults of that moment.
        post_save.connect(_account_created, sender="accounts.User", dispatch_uid="contacts.privacy_defaults")
