"""RunPython operations giving the Moderators group one more permission (the loader skips this
module: its name starts with an underscore)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_to_moderators(app_label: str, codename: str) -> migrations.RunPython:
    def grant(apps, schema_editor):
        # Permissions are normally created after all migrations ran (post_migrate): create them now.
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
        Permission = apps.get_model("auth", "Permission")
        moderators, _ = apps.get_model("auth", "Group").objects.get_or_create(name="Moderators")
        moderators.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))

    def revoke(apps, schema_editor):
        moderators = apps.get_model("auth", "Group").objects.filter(name="Moderators").first()
        if moderators is not None:
            Permission = apps.get_model("auth", "Permission")
            moderators.permissions.remove(*Permission.objects.filter(content_type__app_label=app_label, codename=codename))

    return migrations.RunPython(grant, revoke)
