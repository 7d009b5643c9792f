"""Moderators see users' devices and may sign them out (audited as device_revoke; docs/moderation.md)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def grant_view_device(apps, schema_editor):
    accounts = apps.get_app_config("accounts")
    accounts.models_module = True  # permissions are created after migrations (post_migrate): now
    create_permissions(accounts, apps=apps, verbosity=0)
    accounts.models_module = None
    Permission = apps.get_model("auth", "Permission")
    moderators, _ = apps.get_model("auth", "Group").objects.get_or_create(name="Moderators")
    moderators.permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="view_device"))


def revoke_view_device(apps, schema_editor):
    moderators = apps.get_model("auth", "Group").objects.filter(name="Moderators").first()
    if moderators is not None:
        Permission = apps.get_model("auth", "Permission")
        moderators.permissions.remove(*Permission.objects.filter(codename="view_device"))


class Migration(migrations.Migration):

    dependencies = [
        ('moderation', '0003_moderators_see_media_and_calls'),
        ('accounts', '0003_device'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditentry',
            name='action',
            field=models.CharField(choices=[('user_ban', 'ban user'), ('user_unban', 'unban user'), ('user_delete', 'delete user'), ('message_remove', 'remove message'), ('report_resolve', 'resolve report'), ('report_dismiss', 'dismiss report'), ('moderator_grant', 'make moderator'), ('moderator_revoke', 'remove moderator'), ('device_revoke', 'sign out device')], max_length=20),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='target_type',
            field=models.CharField(choices=[('message', 'Message'), ('user', 'User'), ('group', 'Group'), ('report', 'Report'), ('device', 'Device')], max_length=8),
        ),
        migrations.RunPython(grant_view_device, revoke_view_device),
    ]
