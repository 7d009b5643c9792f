"""The Moderators group with exactly the permissions moderators need (docs/moderation.md)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MODERATOR_PERMISSIONS = [
    ("accounts", "user", "view_user"),
    ("accounts", "user", "ban_user"),
    ("groups", "group", "view_group"),
    ("chat", "conversation", "view_conversation"),
    ("chat", "membership", "view_membership"),
    ("chat", "message", "view_message"),
    ("chat", "message", "remove_message"),
    ("moderation", "report", "view_report"),
    ("moderation", "report", "handle_report"),
    ("moderation", "auditentry", "view_auditentry"),
]


def create_moderators(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate): create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    moderators, _ = Group.objects.get_or_create(name="Moderators")
    moderators.permissions.set(
        [
            Permission.objects.get(content_type__app_label=app, content_type__model=model, codename=codename)
            for app, model, codename in MODERATOR_PERMISSIONS
        ]
    )


def delete_moderators(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Moderators").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0001_initial"),
        ("accounts", "0002_user_moderation"),
        ("chat", "0002_message_moderation"),
        ("groups", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_moderators, delete_moderators)]
