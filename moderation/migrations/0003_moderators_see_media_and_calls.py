"""Moderators also see uploads (with thumbnails) and call history (docs/moderation.md)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = [("media", "media", "view_media"), ("calls", "call", "view_call")]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    moderators, _ = Group.objects.get_or_create(name="Moderators")
    moderators.permissions.add(
        *[
            Permission.objects.get(content_type__app_label=app, content_type__model=model, codename=codename)
            for app, model, codename in PERMISSIONS
        ]
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    moderators = Group.objects.filter(name="Moderators").first()
    if moderators is not None:
        moderators.permissions.remove(*Permission.objects.filter(codename__in=[c for _, _, c in PERMISSIONS]))


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0002_moderators_group"),
        ("media", "0001_initial"),
        ("calls", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
